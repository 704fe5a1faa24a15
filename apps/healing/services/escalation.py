"""Escalation through the component's notification channels (#6 item 6)."""

from apps.components.notifications.models import NotificationEvent
from apps.components.notifications.services import notify_component
from apps.healing.models import HealingPolicy


def escalation_notify(*, policy: HealingPolicy) -> list[int]:
    """Tell the component's channels that healing gave up on it, once per episode
    (an episode is named by its last attempt); the notifications' ids."""
    component = policy.component
    last = policy.attempts.order_by("-pk").values_list("pk", flat=True).first()
    state = getattr(component, "state", None)
    check = (
        f" Last check: {state.last_message}." if state and state.last_message else ""
    )
    return notify_component(
        component=component,
        event=NotificationEvent.ESCALATION,
        subject=f"{component.slug} needs a human: healing gave up",
        text=f"{policy.episode_attempts} healing attempt(s) ({policy.action}) did not"
        f" bring {component.slug} back.{check}",
        dedup_key=f"escalation:{policy.pk}:{last}",
    )
