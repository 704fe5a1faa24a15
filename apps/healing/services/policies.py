"""Operators' writes: policies, heal now, pause and resume, cancel."""

from typing import Any

from celery import current_app
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from apps import flags
from apps.components.models import State
from apps.components.selectors import component_get
from apps.core.exceptions import Conflict, ValidationFailed
from apps.core.models import AuditEvent
from apps.core.services import audit_record
from apps.healing.exceptions import HealingDisabled, HealingPaused
from apps.healing.models import Episode, HealingPolicy
from apps.healing.services.common import (
    ATTEMPT_TASK,
    POLICY_FIELDS,
    SWITCH,
    attempt_enqueue_on_commit,
    component_state_of,
    episode_end,
    episode_start,
    full_clean,
    policy_locked,
    policy_public,
    publish_on_commit,
)


@transaction.atomic
def policy_save(
    *,
    slug: str,
    data: dict[str, Any],
    actor: User | None,
    source: AuditEvent.Source,
    reason: str = "",
) -> HealingPolicy:
    """Create or change component ``slug``'s healing policy (validated, audited)."""
    unknown = sorted(set(data) - set(POLICY_FIELDS))
    if unknown:
        raise ValidationFailed({name: ["unknown field"] for name in unknown})
    component = component_get(slug=slug)
    policy = HealingPolicy.objects.select_for_update().filter(component=component)
    found = policy.first()
    before = policy_public(found) if found else None
    policy_row = found or HealingPolicy(component=component)
    for name, value in data.items():
        setattr(policy_row, name, value)
    full_clean(policy_row)
    policy_row.save()
    action = "healing.policy_changed" if found else "healing.policy_created"
    audit_record(
        actor=actor,
        action=action,
        source=source,
        target=policy_row,
        before=before,
        after=policy_public(policy_row),
        reason=reason,
    )
    return policy_row


@transaction.atomic
def healing_heal_now(
    *, slug: str, reason: str, actor: User | None, source: AuditEvent.Source
) -> HealingPolicy:
    """An operator's heal: a fresh episode whose first attempt runs at once."""
    if not reason.strip():
        raise ValidationFailed(
            {"reason": ["Say why: it is recorded in the audit log."]}
        )
    if not flags.is_enabled(SWITCH):
        raise HealingDisabled(f"Healing is switched off ({SWITCH}).")
    policy = policy_locked(slug)
    if policy.paused:
        raise HealingPaused(f"Healing of {slug!r} is paused: resume it first.")
    now = timezone.now()
    policy.episode = Episode.ACTIVE
    policy.episode_attempts = 0
    policy.next_attempt_at = now
    policy.save(
        update_fields=["episode", "episode_attempts", "next_attempt_at", "updated_at"]
    )
    audit_record(
        actor=actor,
        action="healing.heal_now",
        source=source,
        target=policy,
        reason=reason,
    )
    publish_on_commit(policy, "requested", due=now.isoformat())
    transaction.on_commit(
        lambda: current_app.send_task(
            ATTEMPT_TASK, args=[policy.pk], kwargs={"forced": True}
        )
    )
    return policy


@transaction.atomic
def healing_set_paused(
    *,
    slug: str,
    paused: bool,
    actor: User | None,
    source: AuditEvent.Source,
    reason: str = "",
) -> HealingPolicy:
    """Pause or resume a component's healing; resuming an unhealthy one heals it."""
    policy = policy_locked(slug)
    if policy.paused == paused:
        state = "paused" if paused else "not paused"
        raise Conflict(f"Healing of {slug!r} is already {state}.", code="no_change")
    policy.paused = paused
    policy.save(update_fields=["paused", "updated_at"])
    action = "healing.paused" if paused else "healing.resumed"
    audit_record(
        actor=actor, action=action, source=source, target=policy, reason=reason
    )
    publish_on_commit(policy, action.split(".")[1])
    if not paused and policy.episode == Episode.ACTIVE:
        attempt_enqueue_on_commit(policy.pk, delay=0)
    elif not paused and component_state_of(policy) == State.UNHEALTHY:
        now = timezone.now()
        episode_start(policy, due=now, now=now)
    return policy


@transaction.atomic
def healing_cancel(
    *, slug: str, actor: User | None, source: AuditEvent.Source, reason: str = ""
) -> HealingPolicy:
    """End the component's episode (active or needing a human) without healing."""
    policy = policy_locked(slug)
    if policy.episode == Episode.IDLE:
        raise Conflict(f"{slug!r} has no healing episode.", code="no_episode")
    episode_end(policy)
    audit_record(
        actor=actor,
        action="healing.cancelled",
        source=source,
        target=policy,
        reason=reason,
    )
    publish_on_commit(policy, "cancelled")
    return policy
