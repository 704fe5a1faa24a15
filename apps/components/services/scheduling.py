"""Writes of the scheduler: claiming due checks, running batches, pruning results."""

import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import structlog
from celery import current_app
from django.contrib.auth.models import User
from django.db import models, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from apps import flags
from apps.components.checkers.base import CheckOutcome
from apps.components.checkers.runner import run_jobs
from apps.components.models import Component, HealthResult, Kind
from apps.components.recording import results_record
from apps.components.selectors import check_jobs_for_claim
from apps.components.services.common import component_locked
from apps.core.exceptions import Conflict
from apps.core.models import AuditEvent
from apps.core.services import audit_record

log = structlog.get_logger(__name__)

RUN_BATCH_TASK = "components.run_batch"
# Added to a claim beyond timeout * attempts: time to write the batch's results.
CLAIM_MARGIN_SECONDS = 10
# The console switch an operator turns off to stop every scheduled check.
CHECKS_SWITCH = "opsconsole.checks.enabled"
# A dispatch tick stops after this many batches; the next tick takes the rest.
MAX_BATCHES_PER_TICK = 50
# A tick (every second) also claims what falls due before the next one; the batch
# is sent to start at its first check's due time and starts each check at its own,
# so a check waits neither for the tick nor behind the batches of the tick.
LOOKAHEAD_SECONDS = 1.0


def components_dispatch_due(*, now: datetime, batch_size: int = 100) -> int:
    """Claim due components in batches and enqueue a check batch for each; the count.

    Nothing is claimed while the console switch ``opsconsole.checks.enabled`` is off
    (a manual "check now" still runs)."""
    if not flags.is_enabled(CHECKS_SWITCH, default=True):
        return 0
    total = 0
    for _ in range(MAX_BATCHES_PER_TICK):
        claimed = _claim_batch(now=now, batch_size=batch_size)
        total += claimed
        if claimed < batch_size:
            break
    return total


@transaction.atomic
def _claim_batch(*, now: datetime, batch_size: int) -> int:
    # Due by the next tick, or held by a claim that expired (its worker died).
    # Heartbeats are pushed: the heartbeat evaluator watches them instead.
    due = (
        Q(enabled=True, paused=False)
        & ~Q(kind=Kind.HEARTBEAT)
        & (
            Q(
                next_check_at__lte=now + timedelta(seconds=LOOKAHEAD_SECONDS),
                claimed_until__isnull=True,
            )
            | Q(claimed_until__lte=now)
        )
    )
    rows = list(
        Component.objects.select_for_update(skip_locked=True)
        .filter(due)
        .order_by("next_check_at")
        .values_list("id", "next_check_at", "claimed_until")[:batch_size]
    )
    if not rows:
        return 0
    ids = [pk for pk, _, _ in rows]
    starts_at = [
        due_at.timestamp() if claimed is None and due_at > now else None
        for _, due_at, claimed in rows
    ]
    token = uuid.uuid4()
    # Next run and claim expiry count from the check's due time: its next_check_at,
    # or now if that has passed or its claim expired (a lost check runs again now).
    Component.objects.filter(id__in=ids).update(
        # Jitter (≤ 10 % of the interval, ≤ 5 s) spreads components due together.
        next_check_at=RawSQL(
            "CASE WHEN claimed_until IS NULL THEN GREATEST(next_check_at, %s)"
            " ELSE %s END + make_interval(secs => interval_seconds"
            " + random() * LEAST(interval_seconds * 0.1, 5))",
            (now, now),
            output_field=models.DateTimeField(),
        ),
        claimed_until=RawSQL(
            "CASE WHEN claimed_until IS NULL THEN GREATEST(next_check_at, %s)"
            " ELSE %s END"
            " + make_interval(secs => timeout_seconds * (retries + 1) + %s)",
            (now, now, CLAIM_MARGIN_SECONDS),
            output_field=models.DateTimeField(),
        ),
        claim_token=token,
    )
    _enqueue_on_commit(ids, token, starts_at)
    return len(ids)


def _enqueue_on_commit(
    ids: list[int], token: uuid.UUID, starts_at: list[float | None] | None = None
) -> None:
    """Send the batch after commit. ``starts_at``: each check's due time (None: now);
    when all are ahead, the batch is sent to start at the earliest."""
    args: list[object] = [ids, str(token)]
    first = None
    if starts_at is not None and any(start is not None for start in starts_at):
        args.append(starts_at)
        if None not in starts_at:
            first = min(start for start in starts_at if start is not None)
    transaction.on_commit(lambda: _send(args, first))


def _send(args: list[object], first: float | None) -> None:
    eta = None
    # Never later than the lookahead, whatever clock ``now`` came from.
    if first is not None and (start := min(first, time.time() + LOOKAHEAD_SECONDS)):
        eta = datetime.fromtimestamp(start, UTC) if start > time.time() else None
    current_app.send_task(RUN_BATCH_TASK, args=args, eta=eta)


@transaction.atomic
def component_check_now(
    *, slug: str, actor: User | None, source: AuditEvent.Source
) -> Component:
    """Run the component's check now, outside its schedule; Conflict if one runs."""
    locked = component_locked(slug)
    if locked.kind == Kind.HEARTBEAT:
        raise Conflict(
            f"{slug!r} is a heartbeat: it is pushed, not checked.",
            code="push_component",
        )
    now = timezone.now()
    if locked.claimed_until is not None and locked.claimed_until > now:
        raise Conflict(
            f"A check of {slug!r} is already running.", code="check_in_progress"
        )
    attempts = locked.retries + 1
    locked.claim_token = uuid.uuid4()
    locked.claimed_until = now + timedelta(
        seconds=locked.timeout_seconds * attempts + CLAIM_MARGIN_SECONDS
    )
    locked.save(update_fields=["claim_token", "claimed_until", "updated_at"])
    audit_record(
        actor=actor, action="component.check_requested", source=source, target=locked
    )
    _enqueue_on_commit([locked.pk], locked.claim_token)
    return locked


def components_run_batch(
    *,
    component_ids: Sequence[int],
    claim_token: uuid.UUID,
    starts_at: Mapping[int, float] | None = None,
) -> int:
    """Check the components still held under ``claim_token`` and record the results.

    ``starts_at``: a component's due time (epoch seconds) when it was claimed ahead
    of it; its check starts then."""
    jobs = check_jobs_for_claim(component_ids=component_ids, claim_token=claim_token)
    if not jobs:
        return 0
    outcomes: dict[int, CheckOutcome] = dict(
        zip(
            (job.component_id for job in jobs),
            run_jobs(jobs, starts_at=starts_at),
            strict=True,
        )
    )
    transitions = results_record(
        claim_token=claim_token, outcomes=outcomes, now=timezone.now()
    )
    log.info(
        "component.batch_checked", checks=len(outcomes), transitions=len(transitions)
    )
    return len(outcomes)


def results_prune(*, older_than: datetime, batch_size: int = 5000) -> int:
    """Delete results checked before ``older_than``, in short batches; the count."""
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                HealthResult.objects.filter(checked_at__lt=older_than).values_list(
                    "id", flat=True
                )[:batch_size]
            )
            if ids:
                HealthResult.objects.filter(id__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted
