"""Writes of notifications: channels, one notification per alerting transition (or
other component event) and channel, and delivering it once with bounded retries."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from celery import current_app
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps import flags
from apps.components.models import Component
from apps.components.notifications.models import (
    Notification,
    NotificationChannel,
    NotificationEvent,
    NotificationStatus,
)
from apps.components.notifications.selectors import (
    channel_config_public,
    notification_message,
)
from apps.components.notifications.senders import Delivery, deliver
from apps.components.services.common import config_unmasked, full_clean
from apps.components.transitions import Transition
from apps.core.exceptions import NotFound
from apps.core.models import AuditEvent
from apps.core.services import audit_record

log = structlog.get_logger(__name__)

DELIVER_TASK = "components.notification_deliver"
SWITCH = "opsconsole.notifications.enabled"
# Console-wide maintenance: results are recorded, alerts are not sent.
MAINTENANCE = "opsconsole.maintenance"
MAX_ATTEMPTS = 8
# Wait before retry n: 2, 4, 8 … seconds, at most 5 minutes (≈ 4 min in all).
RETRY_BASE_SECONDS = 2
RETRY_CAP_SECONDS = 300
# Held while sending; a worker killed mid-send frees the row for the redelivered task.
CLAIM_SECONDS = 120
_OPEN = (NotificationStatus.PENDING, NotificationStatus.RETRYING)


@transaction.atomic
def channel_create(
    *,
    name: str,
    kind: str,
    config: dict[str, Any],
    actor: User | None,
    source: AuditEvent.Source,
    enabled: bool = True,
    components: Sequence[Component] = (),
) -> NotificationChannel:
    """Add a channel, validating its config against its kind's schema."""
    channel = NotificationChannel(name=name, kind=kind, config=config, enabled=enabled)
    full_clean(channel)
    channel.save()
    channel.components.set(components)
    audit_record(
        actor=actor,
        action="notification_channel.created",
        source=source,
        target=channel,
        after={"kind": kind, "config": channel_config_public(channel=channel)},
    )
    return channel


@transaction.atomic
def channel_update(
    *,
    channel_id: int,
    name: str,
    kind: str,
    config: dict[str, Any],
    enabled: bool,
    components: Sequence[Component],
    actor: User | None,
    source: AuditEvent.Source,
) -> NotificationChannel:
    """Change a channel; a secret left masked in ``config`` keeps its stored value."""
    channel = NotificationChannel.objects.select_for_update().get(pk=channel_id)
    shown = channel_config_public(channel=channel)
    before = {"kind": channel.kind, "config": shown}
    channel.config = config_unmasked(
        submitted=config, stored=channel.config, shown=shown
    )
    channel.name, channel.kind, channel.enabled = name, kind, enabled
    full_clean(channel)
    channel.save()
    channel.components.set(components)
    after = {"kind": kind, "config": channel_config_public(channel=channel)}
    audit_record(
        actor=actor,
        action="notification_channel.changed",
        source=source,
        target=channel,
        before=before,
        after=after,
    )
    return channel


@transaction.atomic
def channel_delete(
    *, channel_id: int, actor: User | None, source: AuditEvent.Source
) -> None:
    """Remove a channel and the record of what was sent through it."""
    channel = NotificationChannel.objects.select_for_update().filter(pk=channel_id)
    found = channel.first()
    if found is None:
        raise NotFound(f"No channel {channel_id}.", code="channel_not_found")
    audit_record(
        actor=actor,
        action="notification_channel.deleted",
        source=source,
        target=found,
        before={"name": found.name, "kind": found.kind},
    )
    found.delete()


@transaction.atomic
def notifications_create(*, state_change_id: int, component_id: int) -> list[int]:
    """A pending notification for the change per enabled channel of the component,
    each delivered by a task enqueued on commit; their ids."""
    channels = NotificationChannel.objects.filter(
        enabled=True, components=component_id
    ).values_list("id", flat=True)
    made = [
        Notification(
            event=NotificationEvent.TRANSITION,
            component_id=component_id,
            state_change_id=state_change_id,
            channel_id=channel_id,
        )
        for channel_id in channels
    ]
    return _create_pending(made, Q(state_change_id=state_change_id))


@transaction.atomic
def notify_component(
    *,
    component: Component,
    event: NotificationEvent,
    subject: str,
    text: str,
    dedup_key: str,
) -> list[int]:
    """A pending notification of ``event`` (not a transition) per enabled channel of
    the component, each delivered by a task enqueued on commit; their ids. A
    ``dedup_key`` already notified through a channel is not notified again."""
    if not dedup_key or event in (NotificationEvent.TRANSITION, NotificationEvent.TEST):
        raise ValueError(f"not a component event with a dedup key: {event}")
    channels = NotificationChannel.objects.filter(
        enabled=True, components=component
    ).values_list("id", flat=True)
    made = [
        Notification(
            event=event,
            component=component,
            dedup_key=dedup_key,
            subject=subject[:200],
            text=text,
            channel_id=channel_id,
        )
        for channel_id in channels
    ]
    ids = _create_pending(made, Q(dedup_key=dedup_key))
    log.info(
        "notification.queued",
        component_id=component.pk,
        about=event,
        dedup_key=dedup_key,
        notifications=len(ids),
    )
    return ids


def _create_pending(made: list[Notification], same: Q) -> list[int]:
    """Insert ``made`` (one per channel; existing ones are kept) and enqueue every
    pending notification matching ``same``."""
    Notification.objects.bulk_create(made, ignore_conflicts=True)
    ids = list(
        Notification.objects.filter(
            same, status=NotificationStatus.PENDING
        ).values_list("id", flat=True)
    )
    for notification_id in ids:
        _enqueue_on_commit(notification_id)
    return ids


@transaction.atomic
def notify_transitions(transitions: Sequence[Transition]) -> list[int]:
    """The transitions listener: a pending notification per recorded change and
    enabled channel of its component, delivered by tasks enqueued on commit; their
    ids. One query when none of the components has a channel."""
    changes = {
        t.state_change_id: t.component_id
        for t in transitions
        if t.state_change_id is not None
    }
    channels: dict[int, list[int]] = {}
    for channel_id, component_id in NotificationChannel.objects.filter(
        enabled=True, components__in=set(changes.values())
    ).values_list("id", "components"):
        channels.setdefault(component_id, []).append(channel_id)
    made = [
        Notification(
            event=NotificationEvent.TRANSITION,
            component_id=component_id,
            state_change_id=change_id,
            channel_id=channel_id,
        )
        for change_id, component_id in changes.items()
        for channel_id in channels.get(component_id, ())
    ]
    if not made:
        return []
    return _create_pending(made, Q(state_change_id__in=list(changes)))


@transaction.atomic
def notification_test_send(
    *, channel_id: int, actor: User | None, source: AuditEvent.Source
) -> Notification:
    """Send a test message through the channel, by the same task as real ones."""
    channel = NotificationChannel.objects.filter(pk=channel_id).first()
    if channel is None:
        raise NotFound(f"No channel {channel_id}.", code="channel_not_found")
    notification = Notification.objects.create(
        event=NotificationEvent.TEST, channel=channel
    )
    audit_record(
        actor=actor,
        action="notification_channel.test_sent",
        source=source,
        target=channel,
    )
    _enqueue_on_commit(notification.pk)
    return notification


def _enqueue_on_commit(notification_id: int) -> None:
    transaction.on_commit(
        lambda: current_app.send_task(DELIVER_TASK, args=[notification_id])
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one delivery call did; ``retry_in`` seconds when another attempt is due."""

    status: str
    attempts: int = 0
    retry_in: int | None = None


def notification_deliver(*, notification_id: int) -> Attempt | None:
    """Claim the notification and send it; None when there is nothing to do (sent,
    final, suppressed, gone, or being sent by another worker)."""
    now = timezone.now()
    if not flags.is_enabled(SWITCH, default=True) or _alert_in_maintenance(
        notification_id
    ):
        return _suppress(notification_id)
    notification = _claim(notification_id, now)
    if notification is None:
        return None
    delivery = deliver(
        kind=notification.channel.kind,
        config=notification.channel.config,
        message=notification_message(notification=notification),
    )
    return _record(notification, delivery, timezone.now())


def _alert_in_maintenance(notification_id: int) -> bool:
    """The console is in maintenance and this is an alert (test-sends still go)."""
    return (
        flags.is_enabled(MAINTENANCE, default=False)
        and Notification.objects.filter(pk=notification_id)
        .exclude(event=NotificationEvent.TEST)
        .exists()
    )


def _suppress(notification_id: int) -> Attempt | None:
    suppressed = Notification.objects.filter(
        pk=notification_id, status__in=_OPEN
    ).update(status=NotificationStatus.SUPPRESSED, claimed_until=None)
    if not suppressed:
        return None
    log.info("notification.suppressed", notification_id=notification_id)
    return Attempt(NotificationStatus.SUPPRESSED)


def _claim(notification_id: int, now: datetime) -> Notification | None:
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    claimed = Notification.objects.filter(
        free, pk=notification_id, status__in=_OPEN, attempts__lt=MAX_ATTEMPTS
    ).update(
        claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
        attempts=F("attempts") + 1,
    )
    if claimed != 1:
        return None
    return Notification.objects.select_related(
        "channel", "component", "state_change"
    ).get(pk=notification_id)


def _record(notification: Notification, delivery: Delivery, now: datetime) -> Attempt:
    attempts = notification.attempts
    retry = delivery.retryable and attempts < MAX_ATTEMPTS
    if delivery.sent:
        status = NotificationStatus.SENT
    else:
        status = NotificationStatus.RETRYING if retry else NotificationStatus.FAILED
    Notification.objects.filter(pk=notification.pk).update(
        status=status,
        last_error=delivery.error,
        response_code=delivery.response_code,
        claimed_until=None,
        sent_at=now if delivery.sent else None,
    )
    fields = {
        "notification_id": notification.pk,
        "channel_id": notification.channel_id,
        "attempts": attempts,
        "response_code": delivery.response_code,
    }
    if delivery.sent:
        log.info("notification.sent", **fields)
    else:
        log.warning("notification.attempt_failed", error=delivery.error, **fields)
    retry_in = min(RETRY_BASE_SECONDS * 2 ** (attempts - 1), RETRY_CAP_SECONDS)
    return Attempt(status, attempts, retry_in if retry else None)
