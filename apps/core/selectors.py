"""Reads of the core app: users, API tokens, the audit log and worker self-tests."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, cast

from celery.result import AsyncResult
from django.contrib.auth.models import User
from django.db.models import Case, CharField, QuerySet, Value, When
from django.db.models.functions import Now
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.core.exceptions import NotFound
from apps.core.models import ApiToken, AuditEvent
from apps.core.trace_index import TraceItem

STATUS_ACTIVE = "active"
STATUS_EXPIRED = "expired"
STATUS_REVOKED = "revoked"
TOKEN_STATUS_CHOICES = (STATUS_ACTIVE, STATUS_EXPIRED, STATUS_REVOKED)


def user_get(*, username: str) -> User:
    """The user called ``username``, else NotFound."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"Unknown user {username!r}.", code="user_not_found")
    return user


def token_status(token: ApiToken, *, now: datetime | None = None) -> str:
    """``revoked``, ``expired`` or ``active`` (the same rule as ``token_list``)."""
    if token.revoked_at is not None:
        return STATUS_REVOKED
    now = now or timezone.now()
    return (
        STATUS_EXPIRED
        if token.expires_at and token.expires_at <= now
        else STATUS_ACTIVE
    )


def token_list(*, user: User | None = None) -> QuerySet[ApiToken]:
    """Tokens of ``user`` (everyone's when None), newest first, with ``status``."""
    status = Case(
        When(revoked_at__isnull=False, then=Value(STATUS_REVOKED)),
        When(expires_at__lte=Now(), then=Value(STATUS_EXPIRED)),
        default=Value(STATUS_ACTIVE),
        output_field=CharField(),
    )
    tokens = ApiToken.objects.select_related("user").annotate(status=status)
    return tokens if user is None else tokens.filter(user=user)


def token_get(*, prefix: str, user: User | None = None) -> ApiToken:
    """The token with ``prefix`` (only among ``user``'s when given), else NotFound."""
    token = token_list(user=user).filter(prefix=prefix).first()
    if token is None:
        raise NotFound(f"No API token {prefix!r}.", code="token_not_found")
    return token


def audit_list(
    *,
    action: str | None = None,
    target_type: str | None = None,
    since: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Audit events, newest first, by exact action / target type and a start time."""
    events = AuditEvent.objects.order_by("-occurred_at", "-id")
    if action:
        events = events.filter(action=action)
    if target_type:
        events = events.filter(target_type=target_type)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    return events


@dataclass(frozen=True, slots=True)
class SelftestStatus:
    task_id: str
    status: str
    worker: str | None = None
    trace_id: str | None = None
    queue_latency_ms: float | None = None
    error: str | None = None


def selftest_get(*, task_id: str) -> SelftestStatus:
    """Where a self-test stands: pending (also: unknown or expired), succeeded, failed."""
    result: AsyncResult[dict[str, Any]] = AsyncResult(task_id)
    if result.successful():
        report = cast(dict[str, Any], result.result)
        return SelftestStatus(task_id=task_id, status="succeeded", **report)
    if result.failed():
        return SelftestStatus(
            task_id=task_id, status="failed", error=type(result.result).__name__
        )
    return SelftestStatus(task_id=task_id, status="pending")


class FeedItem(TypedDict):
    """One audit event as the dashboard's feed shows it (no before/after)."""

    id: int
    at: str
    actor: str
    action: str
    target: str
    reason: str
    trace_id: str
    url: str


def audit_feed_item(event: AuditEvent) -> FeedItem:
    """``event`` for the live feed, with a link to its target's admin page."""
    return FeedItem(
        id=event.pk,
        at=event.occurred_at.isoformat(),
        actor=event.actor_label,
        action=event.action,
        target=event.target_label,
        reason=event.reason[:500],
        trace_id=event.trace_id,
        url=_admin_url(event.target_type, event.target_id),
    )


def _admin_url(target_type: str, target_id: str) -> str:
    if not target_type or not target_id:
        return ""
    app_label, _, model = target_type.partition(".")
    try:
        return reverse(f"admin:{app_label}_{model}_change", args=[target_id])
    except NoReverseMatch:
        return ""


def audit_feed_recent(*, limit: int = 50) -> list[FeedItem]:
    """The newest ``limit`` audit events for the live feed, newest first."""
    return [audit_feed_item(event) for event in AuditEvent.objects.all()[:limit]]


def audit_trace_items(trace_id: str) -> list[TraceItem]:
    """Audit events carrying ``trace_id`` (a trace source)."""
    events = AuditEvent.objects.filter(trace_id=trace_id).order_by("occurred_at")
    return [
        TraceItem(
            at=event.occurred_at,
            kind="audit",
            summary=f"{event.actor_label} · {event.action} {event.target_label}".strip(),
            url=_admin_url(event.target_type, event.target_id),
        )
        for event in events[:500]
    ]
