"""Helpers for notification tests: channels and state changes to notify about."""

import itertools
from typing import Any

from apps.components.models import Component, StateChange
from apps.components.notifications.models import Notification, NotificationChannel
from apps.components.notifications.services import channel_create
from apps.core.models import AuditEvent

HOOK_SECRET = "hook-secret-0123456789"
_numbers = itertools.count(1)


def make_channel(
    *,
    kind: str = "webhook",
    config: dict[str, Any] | None = None,
    components: tuple[Component, ...] = (),
    **options: Any,
) -> NotificationChannel:
    """A channel made through ``channel_create``."""
    return channel_create(
        name=f"channel-{next(_numbers)}",
        kind=kind,
        config=config or {"url": "http://127.0.0.1:1/hook", "secret": HOOK_SECRET},
        components=components,
        actor=None,
        source=AuditEvent.Source.SYSTEM,
        **options,
    )


def make_change(component: Component, to_state: str = "unhealthy") -> StateChange:
    """A recorded transition of ``component`` into ``to_state``."""
    return StateChange.objects.create(
        component=component,
        from_state="healthy",
        to_state=to_state,
        incident_opened=to_state == "unhealthy",
        message="HTTP 500",
    )


def make_transition_notification(
    component: Component, channel: NotificationChannel
) -> Notification:
    """A pending notification of a new transition of ``component`` via ``channel``."""
    return Notification.objects.create(
        event="transition",
        component=component,
        state_change=make_change(component),
        channel=channel,
    )
