"""Unauthenticated doors of the components app: heartbeat pings."""

from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from apps.components.heartbeats import (
    PING_BODY_LIMIT,
    PingAction,
    heartbeat_ping,
    ping_rate_allowed,
)
from apps.core.exceptions import NotFound

MAX_EXIT_STATUS = 255


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST", "HEAD"])
def ping(
    request: HttpRequest,
    ping_uuid: UUID,
    action: str = PingAction.SUCCESS,
    exit_status: int | None = None,
) -> HttpResponse:
    """A heartbeat ping, answered like Healthchecks: ``OK``, or why not, as text."""
    now = timezone.now()
    try:
        kind, rid = _parse(request, action, exit_status)
    except ValueError:
        return _text("invalid url format", 400)
    if not ping_rate_allowed(ping_uuid=ping_uuid, now=now):
        return _text("rate limited", 429)
    body = request.body[:PING_BODY_LIMIT].decode("utf-8", "replace")
    try:
        heartbeat_ping(
            ping_uuid=ping_uuid,
            action=kind,
            now=now,
            rid=rid,
            exit_status=exit_status,
            body=body,
        )
    except NotFound:
        return _text("not found", 404)
    return _text("OK")


def _parse(
    request: HttpRequest, action: str, exit_status: int | None
) -> tuple[PingAction, UUID | None]:
    """The ping's action and ``rid``; ValueError for an exit status or rid out of range."""
    raw_rid = request.GET.get("rid")
    rid = UUID(raw_rid) if raw_rid else None
    if exit_status is None:
        return PingAction(action), rid
    if exit_status > MAX_EXIT_STATUS:
        raise ValueError(exit_status)
    return (PingAction.SUCCESS if exit_status == 0 else PingAction.FAIL), rid


def _text(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")
