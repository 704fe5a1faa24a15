"""Reads of notifications: channels with secrets masked, deliveries, the message."""

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.db.models import QuerySet

from apps.components.checkers.base import MASK, secret_fields
from apps.components.models import Component
from apps.components.notifications.kinds import CHANNEL_KINDS
from apps.components.notifications.models import (
    Notification,
    NotificationChannel,
)
from apps.components.notifications.senders import Message
from apps.core.exceptions import ValidationFailed


def channel_config_public(*, channel: NotificationChannel) -> dict[str, Any]:
    """The channel's config with secrets masked (a URL keeps only its origin)."""
    schema = CHANNEL_KINDS.get(channel.kind)
    hidden = secret_fields(schema) if schema else frozenset()
    return {
        key: _masked(value) if key in hidden and value else value
        for key, value in channel.config.items()
    }


def _masked(value: Any) -> str:
    if isinstance(value, str) and "://" in value:
        parts = urlsplit(value)
        return f"{parts.scheme}://{parts.hostname}/{MASK}"
    return MASK


def channels_named(*, names: Iterable[str]) -> list[NotificationChannel]:
    """The channels ``names`` name; ValidationFailed on notification_channels for
    unknown ones."""
    wanted = list(dict.fromkeys(names))
    found = list(NotificationChannel.objects.filter(name__in=wanted))
    missing = sorted(set(wanted) - {channel.name for channel in found})
    if missing:
        raise ValidationFailed({"notification_channels": [f"No channel {missing}."]})
    return found


def channel_ids_of(*, component_ids: Iterable[int]) -> list[int]:
    """The enabled channels of any of ``component_ids``, each once, by id."""
    return list(
        NotificationChannel.objects.filter(
            enabled=True, components__in=list(component_ids)
        )
        .values_list("id", flat=True)
        .distinct()
        .order_by("id")
    )


def channel_list() -> QuerySet[NotificationChannel]:
    """Channels with the slugs of their components."""
    return NotificationChannel.objects.prefetch_related("components")


def notification_list(
    *,
    component_slug: str | None = None,
    channel: str | None = None,
    status: str | None = None,
) -> QuerySet[Notification]:
    """Notifications newest first, optionally of one component, channel or status."""
    rows = Notification.objects.select_related("channel", "component", "state_change")
    if component_slug is not None:
        rows = rows.filter(component__slug=component_slug)
    if channel is not None:
        rows = rows.filter(channel__name=channel)
    if status is not None:
        rows = rows.filter(status=status)
    return rows


def notification_message(*, notification: Notification) -> Message:
    """What to send for ``notification``: its transition, its component event, or a
    test message."""
    change, component = notification.state_change, notification.component
    if component is None:
        name = notification.channel.name
        return Message(
            notification.pk,
            "opsconsole: test notification",
            f"Test notification from opsconsole ({name}).",
            {"event": "notification.test", "channel": name},
        )
    if change is None:
        return _component_event_message(notification, component)
    slug = component.slug
    summary = f"{slug}: {change.from_state} → {change.to_state}"
    payload: dict[str, Any] = {
        "event": "component.state_changed",
        "component": slug,
        "name": component.name,
        "from_state": change.from_state,
        "to_state": change.to_state,
        "at": change.at.isoformat(),
        "message": change.message,
        "incident_opened": change.incident_opened,
        "state_change_id": change.pk,
        "trace_id": change.trace_id,
    }
    text = f"{summary} ({change.message})" if change.message else summary
    return Message(notification.pk, f"opsconsole: {summary}", text, payload)


def _component_event_message(
    notification: Notification, component: Component
) -> Message:
    payload = {
        "event": f"component.{notification.event}",
        "component": component.slug,
        "name": component.name,
        "subject": notification.subject,
        "text": notification.text,
        "at": notification.created_at.isoformat(),
        "dedup_key": notification.dedup_key,
    }
    subject = f"opsconsole: {notification.subject}"
    return Message(notification.pk, subject, notification.text, payload)
