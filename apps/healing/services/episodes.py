"""Flow 3: a request starts an episode; attempts run under a fleet-wide lock with
backoff between them; recovery ends it; running out of attempts escalates."""

from datetime import datetime, timedelta

import structlog
from celery import current_app
from django.db import transaction
from django.utils import timezone

from apps import flags
from apps.components.models import State, Status
from apps.components.state import UP
from apps.core.exceptions import Conflict
from apps.core.services import audit_record
from apps.core.trace import current_trace_id
from apps.healing.actions import (
    ActionResult,
    HealContext,
    action_describe,
    action_run,
)
from apps.healing.locks import heal_lock, lock_ttl
from apps.healing.models import Episode, HealingAttempt, HealingPolicy, Outcome
from apps.healing.policy import heal_lock_ttl
from apps.healing.services.common import (
    ATTEMPT_TASK,
    SWITCH,
    SYSTEM,
    TASK,
    attempt_enqueue_on_commit,
    episode_end,
    episode_start,
    next_delay,
    publish_on_commit,
)
from apps.healing.services.escalation import escalation_notify
from apps.healing.services.lost import attempts_lost_fail

log = structlog.get_logger(__name__)


@transaction.atomic
def healing_request(*, component_id: int, reason: str, now: datetime) -> bool:
    """Start a healing episode for a component that became unhealthy.

    Nothing happens without a policy, while paused or while an episode is on; after
    a successful heal the first attempt waits out the cooldown. True if one started.
    """
    policy = (
        HealingPolicy.objects.select_for_update()
        .select_related("component")
        .filter(component_id=component_id)
        .first()
    )
    if policy is None or policy.paused or policy.episode != Episode.IDLE:
        return False
    due = now
    if policy.last_healed_at is not None:
        due = max(
            now, policy.last_healed_at + timedelta(seconds=policy.cooldown_seconds)
        )
    episode_start(policy, due=due, now=now)
    audit_record(
        actor=None,
        action="healing.requested",
        source=SYSTEM,
        target=policy,
        reason=reason,
    )
    publish_on_commit(policy, "requested", due=due.isoformat())
    return True


@transaction.atomic
def healing_recovered(*, component_id: int, now: datetime) -> bool:
    """End the episode of a component that is up again; True if one ended."""
    policy = (
        HealingPolicy.objects.select_for_update()
        .filter(component_id=component_id)
        .exclude(episode=Episode.IDLE)
        .first()
    )
    if policy is None:
        return False
    _end_recovered(policy, now)
    return True


def _end_recovered(policy: HealingPolicy, now: datetime) -> None:
    """The component is up: end the episode (a heal if attempts ran, for cooldown)."""
    healed = policy.episode_attempts > 0
    episode_end(policy, healed_at=now if healed else None)
    audit_record(actor=None, action="healing.recovered", source=SYSTEM, target=policy)
    publish_on_commit(policy, "recovered")


def healing_attempt_run(
    *, policy_id: int, now: datetime | None = None, forced: bool = False
) -> HealingAttempt | None:
    """Run the policy's next attempt if it is due, under the component's lock.

    ``forced`` (an operator's heal now) runs it whatever the component's state.
    None when nothing ran: not due, locked by another worker, paused, switched
    off, recovered, or escalated because the attempts ran out.
    """
    policy = HealingPolicy.objects.filter(pk=policy_id).first()
    if policy is None:
        return None
    ttl = heal_lock_ttl(timeout=policy.timeout_seconds)
    with heal_lock(policy.component_id, ttl_seconds=ttl) as held:
        if not held:
            _retry_after_lock(policy)
            return None
        attempt = _attempt_begin(policy_id, now or timezone.now(), forced)
        if attempt is None:
            return None
        result = _attempt_execute(attempt, policy)
        return _attempt_finish(attempt, result.ok, result.output)


def _retry_after_lock(policy: HealingPolicy) -> None:
    """Another worker holds the lock: look again once it must have expired, so a
    killed worker's episode goes on (a finished one is simply not due then)."""
    log.info("heal.locked_elsewhere", component_id=policy.component_id)
    delay = lock_ttl(policy.component_id) + 1
    current_app.send_task(ATTEMPT_TASK, args=[policy.pk], countdown=delay)


@transaction.atomic
def _attempt_begin(
    policy_id: int, now: datetime, forced: bool
) -> HealingAttempt | None:
    policy = (
        HealingPolicy.objects.select_for_update(of=("self",))
        .select_related("component__state")
        .filter(pk=policy_id, episode=Episode.ACTIVE, paused=False)
        .first()
    )
    if policy is None or policy.next_attempt_at is None or policy.next_attempt_at > now:
        return None
    if _attempt_in_flight(policy, now):
        return None
    if not flags.is_enabled(SWITCH):
        log.info("heal.skipped_switched_off", component_id=policy.component_id)
        return None
    if not forced and not _still_failing(policy, now):
        return None
    if policy.episode_attempts >= policy.max_attempts:
        _escalate(policy)
        return None
    policy.episode_attempts += 1
    # Kept if this worker dies mid-action: once the attempt is failed as lost, it
    # has long passed and the beat's sweep enqueues the next one.
    policy.next_attempt_at = now + timedelta(
        seconds=next_delay(policy) + policy.timeout_seconds
    )
    policy.save(update_fields=["episode_attempts", "next_attempt_at", "updated_at"])
    attempt = HealingAttempt.objects.create(
        policy=policy,
        component=policy.component,
        number=policy.episode_attempts,
        action=policy.action,
        dry_run=policy.dry_run,
        started_at=now,
        reason="heal now" if forced else policy.component.state.last_message[:2000],
        trace_id=current_trace_id(),
    )
    publish_on_commit(policy, "attempt_started", attempt=attempt.number)
    return attempt


def _attempt_in_flight(policy: HealingPolicy, now: datetime) -> bool:
    """Whether an earlier attempt still runs (its worker alive but slower than the
    lock's TTL); one left running past its limit is failed as lost first."""
    attempts_lost_fail(now=now, policy_id=policy.pk)
    running = policy.attempts.filter(outcome=Outcome.RUNNING).exists()
    if running:
        log.info("heal.attempt_still_running", component_id=policy.component_id)
    return running


def _still_failing(policy: HealingPolicy, now: datetime) -> bool:
    """Whether to heal now; ends the episode of a component that is up again, and
    waits a step for one whose last check passed but is not yet back up."""
    state = policy.component.state
    if state.state in UP:
        _end_recovered(policy, now)
        return False
    if state.state == State.UNHEALTHY and state.last_status == Status.UNHEALTHY:
        return True
    policy.next_attempt_at = now + timedelta(seconds=next_delay(policy))
    policy.save(update_fields=["next_attempt_at", "updated_at"])
    attempt_enqueue_on_commit(
        policy.pk, delay=(policy.next_attempt_at - now).total_seconds()
    )
    return False


def _escalate(policy: HealingPolicy) -> None:
    policy.episode = Episode.NEEDS_HUMAN
    policy.next_attempt_at = None
    policy.save(update_fields=["episode", "next_attempt_at", "updated_at"])
    attempts = policy.episode_attempts
    log.warning("heal.escalated", component_id=policy.component_id, attempts=attempts)
    audit_record(
        actor=None,
        action="healing.escalated",
        source=SYSTEM,
        target=policy,
        after={"attempts": attempts, "episode": Episode.NEEDS_HUMAN.value},
        reason=f"{attempts} healing attempt(s) did not bring it back",
    )
    publish_on_commit(policy, "escalated", attempts=attempts)
    escalation_notify(policy=policy)


def _attempt_execute(attempt: HealingAttempt, policy: HealingPolicy) -> ActionResult:
    if attempt.dry_run:
        what = action_describe(policy.action, policy.config)
        return ActionResult(True, f"dry run: would {what}")
    ctx = HealContext(
        slug=attempt.component.slug,
        attempt=attempt.number,
        reason=attempt.reason,
        trace_id=attempt.trace_id,
        timeout=policy.timeout_seconds,
    )
    return action_run(policy.action, policy.config, ctx)


@transaction.atomic
def _attempt_finish(attempt: HealingAttempt, ok: bool, output: str) -> HealingAttempt:
    now = timezone.now()
    if attempt.dry_run:
        outcome = Outcome.DRY_RUN
    else:
        outcome = Outcome.SUCCEEDED if ok else Outcome.FAILED
    # The policy row first, as _attempt_begin locks it (then attempts): no deadlock.
    policy = HealingPolicy.objects.select_for_update().get(pk=attempt.policy_id)
    # Conditional: an attempt already failed as lost keeps that record.
    running = HealingAttempt.objects.filter(pk=attempt.pk, outcome=Outcome.RUNNING)
    if not running.update(finished_at=now, output=output, outcome=outcome):
        return _finish_after_lost(attempt, outcome, output)
    attempt.finished_at, attempt.output, attempt.outcome = now, output, outcome
    delay = next_delay(policy)
    if policy.episode == Episode.ACTIVE:
        policy.next_attempt_at = now + timedelta(seconds=delay)
        policy.save(update_fields=["next_attempt_at", "updated_at"])
    log.info(
        "heal.attempt_finished" if ok else "heal.attempt_failed",
        component_id=attempt.component_id,
        attempt=attempt.number,
        outcome=attempt.outcome,
    )
    audit_record(
        actor=None,
        action="healing.attempted",
        source=TASK,
        target=policy,
        after={"attempt": attempt.number, "outcome": attempt.outcome},
    )
    publish_on_commit(
        policy, "attempt_finished", attempt=attempt.number, outcome=attempt.outcome
    )
    slug = attempt.component.slug
    transaction.on_commit(lambda: _recheck(slug))
    attempt_enqueue_on_commit(policy.pk, delay=delay)
    return attempt


def _finish_after_lost(
    attempt: HealingAttempt, outcome: str, output: str
) -> HealingAttempt:
    """A worker given up for lost finished after all: note its result on the lost
    attempt; the episode went on without it, so its schedule is left alone."""
    attempt.refresh_from_db()
    log.warning(
        "heal.attempt_finished_after_lost",
        component_id=attempt.component_id,
        attempt=attempt.number,
        outcome=outcome,
    )
    # Both parts are short (output is an excerpt already); the lost line stays first.
    attempt.output = f"{attempt.output}\nfinished later: {outcome}\n{output}"
    attempt.save(update_fields=["output"])
    slug = attempt.component.slug
    transaction.on_commit(lambda: _recheck(slug))
    return attempt


def _recheck(slug: str) -> None:
    """Check the component at once, so a heal that worked ends the episode soon."""
    from apps.components.services import component_check_now

    try:
        component_check_now(slug=slug, actor=None, source=TASK)
    except Conflict:
        log.info("heal.recheck_already_running", slug=slug)


def healing_dispatch_due(*, now: datetime) -> int:
    """Fail attempts whose worker was lost, then enqueue an attempt for every
    active episode that is due (a lost task's safety net: the lock, the running
    attempt check and the due check make a duplicate harmless); how many sent."""
    attempts_lost_fail(now=now)
    ids = list(
        HealingPolicy.objects.filter(
            episode=Episode.ACTIVE, paused=False, next_attempt_at__lte=now
        ).values_list("pk", flat=True)[:500]
    )
    for policy_id in ids:
        current_app.send_task(ATTEMPT_TASK, args=[policy_id])
    return len(ids)
