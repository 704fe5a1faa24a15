"""Unauthenticated doors of the components app: heartbeat pings and ``/health``."""

from typing import Any, TypedDict
from uuid import UUID

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from apps.components.heartbeats import (
    PING_BODY_LIMIT,
    PingAction,
    heartbeat_ping,
    ping_rate_allowed,
)
from apps.components.selectors import HealthCheck, health_report
from apps.core.auth import TokenAuth
from apps.core.exceptions import AuthenticationFailed, NotFound
from apps.core.models import Scope
from apps.core.roles import allowed_scopes

MAX_EXIT_STATUS = 255
HEALTH_JSON = "application/health+json"
DATASTORE_KINDS = frozenset({"postgres", "redis"})


class _Ping(TypedDict):
    action: PingAction
    rid: UUID | None
    exit_status: int | None
    body: str


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
        parsed = _parse(request, action, exit_status)
    except ValueError:
        return _text("invalid url format", 400)
    if not ping_rate_allowed(ping_uuid=ping_uuid, now=now):
        return _text("rate limited", 429)
    try:
        heartbeat_ping(ping_uuid=ping_uuid, now=now, **parsed)
    except NotFound:
        return _text("not found", 404)
    return _text("OK")


def _parse(request: HttpRequest, action: str, exit_status: int | None) -> _Ping:
    """The ping's fields; ValueError for an exit status or ``rid`` out of range."""
    raw_rid = request.GET.get("rid")
    if exit_status is not None and exit_status > MAX_EXIT_STATUS:
        raise ValueError(exit_status)
    if exit_status is not None:
        action = PingAction.SUCCESS if exit_status == 0 else PingAction.FAIL
    return _Ping(
        action=PingAction(action),
        rid=UUID(raw_rid) if raw_rid else None,
        exit_status=exit_status,
        body=request.body[:PING_BODY_LIMIT].decode("utf-8", "replace"),
    )


def _text(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """The IETF draft's health response: the status, and each component's to readers."""
    detailed = _may_read(request)
    report = health_report(detailed=detailed)
    body: dict[str, Any] = {"status": report.status, "description": "opsconsole"}
    if detailed:
        body["checks"] = {check.slug: [_health_check(check)] for check in report.checks}
    status = 503 if report.status == "fail" else 200
    return JsonResponse(body, status=status, content_type=HEALTH_JSON)


def _may_read(request: HttpRequest) -> bool:
    """Whether the caller may read details: a session or bearer token with ``read``."""
    if not request.headers.get("Authorization"):
        return Scope.READ.value in allowed_scopes(request.user)
    try:
        principal = TokenAuth()(request)
    except AuthenticationFailed:
        return False
    return principal is not None and Scope.READ.value in principal.scopes


def _health_check(check: HealthCheck) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "componentId": check.slug,
        "componentType": "datastore" if check.kind in DATASTORE_KINDS else "component",
        "status": check.status,
    }
    if check.latency_ms is not None:
        entry.update(observedValue=check.latency_ms, observedUnit="ms")
    if check.checked_at is not None:
        entry["time"] = check.checked_at.isoformat()
    if check.status != "pass" and check.message:
        entry["output"] = check.message
    return entry
