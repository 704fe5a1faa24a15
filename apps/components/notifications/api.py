"""Notifications REST endpoints, under /api/v1/components/notifications."""

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

from apps.components.notifications.models import Notification, NotificationChannel
from apps.components.notifications.schemas import (
    ChannelOut,
    NotificationFilter,
    NotificationOut,
    TestQueuedOut,
)
from apps.components.notifications.selectors import channel_list, notification_list
from apps.components.notifications.services import notification_test_send
from apps.components.schemas import Pagination
from apps.core.auth import Principal, require_perm, require_scope
from apps.core.models import AuditEvent, Scope

router = Router(tags=["notifications"])


def _reader(request: HttpRequest, perm: str) -> Principal:
    require_scope(request, Scope.READ)
    return require_perm(request, perm)


@router.get("/channels", response=list[ChannelOut])
@paginate(Pagination)
def channels(request: HttpRequest) -> QuerySet[NotificationChannel]:
    """Notification channels with their components; config secrets masked."""
    _reader(request, "components.view_notificationchannel")
    return channel_list()


@router.post("/channels/{channel_id}/test", response={202: TestQueuedOut})
def test_send(request: HttpRequest, channel_id: int) -> Status[Notification]:
    """Send a test notification through the channel, on a worker."""
    require_scope(request, Scope.WRITE)
    principal = require_perm(request, "components.change_notificationchannel")
    queued = notification_test_send(
        channel_id=channel_id, actor=principal.user, source=AuditEvent.Source.API
    )
    return Status(202, queued)


@router.get("/deliveries", response=list[NotificationOut])
@paginate(Pagination)
def deliveries(
    request: HttpRequest, filters: Query[NotificationFilter]
) -> QuerySet[Notification]:
    """Notifications newest first, with each one's outcome."""
    _reader(request, "components.view_notification")
    return notification_list(
        component_slug=filters.component,
        channel=filters.channel,
        status=filters.status,
    )
