"""What the healing services share: constants, episode steps, enqueues, publishes."""

from datetime import datetime
from typing import Any

from celery import current_app
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction

from apps import live
from apps.components.models import State
from apps.core.exceptions import ValidationFailed
from apps.core.models import AuditEvent
from apps.healing.models import Episode, HealingPolicy
from apps.healing.policy import backoff_delay
from apps.healing.selectors import policy_config_public, policy_get

ATTEMPT_TASK = "healing.attempt"
SWITCH = "opsconsole.healing.enabled"
SYSTEM = AuditEvent.Source.SYSTEM
TASK = AuditEvent.Source.TASK
POLICY_FIELDS = (
    "action",
    "config",
    "max_attempts",
    "backoff_seconds",
    "backoff_max_seconds",
    "jitter",
    "cooldown_seconds",
    "timeout_seconds",
    "paused",
    "dry_run",
)


def policy_public(policy: HealingPolicy) -> dict[str, Any]:
    data = {name: getattr(policy, name) for name in POLICY_FIELDS}
    return {**data, "config": policy_config_public(policy=policy)}


def episode_start(policy: HealingPolicy, *, due: datetime, now: datetime) -> None:
    policy.episode = Episode.ACTIVE
    policy.episode_attempts = 0
    policy.next_attempt_at = due
    policy.save(
        update_fields=["episode", "episode_attempts", "next_attempt_at", "updated_at"]
    )
    attempt_enqueue_on_commit(policy.pk, delay=(due - now).total_seconds())


def episode_end(policy: HealingPolicy, *, healed_at: datetime | None = None) -> None:
    policy.episode = Episode.IDLE
    policy.episode_attempts = 0
    policy.next_attempt_at = None
    fields = ["episode", "episode_attempts", "next_attempt_at", "updated_at"]
    if healed_at is not None:
        policy.last_healed_at = healed_at
        fields.append("last_healed_at")
    policy.save(update_fields=fields)


def policy_locked(slug: str) -> HealingPolicy:
    policy = policy_get(slug=slug)
    return (
        HealingPolicy.objects.select_for_update()
        .select_related("component")
        .get(pk=policy.pk)
    )


def component_state_of(policy: HealingPolicy) -> str:
    state = getattr(policy.component, "state", None)
    return state.state if state is not None else State.UNKNOWN


def attempt_enqueue_on_commit(policy_id: int, *, delay: float) -> None:
    transaction.on_commit(
        lambda: current_app.send_task(
            ATTEMPT_TASK, args=[policy_id], countdown=max(0.0, delay)
        )
    )


def publish_on_commit(policy: HealingPolicy, event: str, **extra: Any) -> None:
    payload = {
        "slug": policy.component.slug,
        "event": event,
        "episode": policy.episode,
        "attempts": policy.episode_attempts,
        "paused": policy.paused,
        **extra,
    }
    transaction.on_commit(lambda: live.publish("healing", payload, key=payload["slug"]))


def full_clean(policy: HealingPolicy) -> None:
    try:
        policy.full_clean()
    except DjangoValidationError as exc:
        fields = {name: list(msgs) for name, msgs in exc.message_dict.items()}
        raise ValidationFailed(fields) from exc


def next_delay(policy: HealingPolicy) -> float:
    return backoff_delay(
        attempt=max(1, policy.episode_attempts),
        base=policy.backoff_seconds,
        cap=policy.backoff_max_seconds,
        jitter=policy.jitter,
    )
