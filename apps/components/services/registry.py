"""Writes of the components registry: components, maintenance, pause and resume."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.components.models import (
    Component,
    ComponentState,
    Heartbeat,
    Kind,
    MaintenanceWindow,
)
from apps.components.notifications.models import NotificationChannel
from apps.components.services.common import (
    component_audit_view,
    component_config_resolved,
    component_locked,
    full_clean,
    heartbeat_schedule_reset,
)
from apps.core.exceptions import Conflict
from apps.core.models import AuditEvent
from apps.core.services import audit_record


@transaction.atomic
def component_create(
    *,
    name: str,
    slug: str,
    kind: str,
    config: dict[str, Any],
    actor: User | None,
    source: AuditEvent.Source,
    group: str = "",
    tags: Sequence[str] = (),
    owner: str = "",
    description: str = "",
    interval_seconds: int = 30,
    timeout_seconds: float = 10.0,
    retries: int = 0,
    failure_threshold: int | None = None,
    success_threshold: int | None = None,
    enabled: bool = True,
    paused: bool = False,
    next_check_at: datetime | None = None,
    depends_on: Sequence[Component] = (),
    notification_channels: Sequence[NotificationChannel] = (),
) -> Component:
    """Register a component, validating its config against its kind's schema."""
    # A heartbeat acts on its first missed or failed ping, as Healthchecks does.
    pushed = kind == Kind.HEARTBEAT
    component = Component(
        name=name,
        slug=slug,
        kind=kind,
        config=component_config_resolved(component=None, kind=kind, config=config),
        group=group,
        tags=list(tags),
        owner=owner,
        description=description,
        interval_seconds=interval_seconds,
        timeout_seconds=timeout_seconds,
        retries=retries,
        failure_threshold=failure_threshold or (1 if pushed else 3),
        success_threshold=success_threshold or (1 if pushed else 2),
        enabled=enabled,
        paused=paused,
        next_check_at=next_check_at or timezone.now(),
    )
    full_clean(component)
    component.save()
    ComponentState.objects.create(component=component)
    if pushed:
        Heartbeat.objects.create(component=component)
    component.depends_on.set(depends_on)
    component.notification_channels.set(notification_channels)
    audit_record(
        actor=actor,
        action="component.created",
        source=source,
        target=component,
        after=component_audit_view(component),
    )
    return component


@transaction.atomic
def maintenance_window_create(
    *,
    component: Component,
    starts_at: datetime,
    ends_at: datetime | None,
    actor: User | None,
    source: AuditEvent.Source,
    cron: str = "",
    duration: timedelta | None = None,
    tz: str = "UTC",
    reason: str = "",
) -> MaintenanceWindow:
    """Schedule maintenance: one-off (``ends_at``) or recurring (``cron`` + ``duration``)."""
    window = MaintenanceWindow(
        component=component,
        starts_at=starts_at,
        ends_at=ends_at,
        cron=cron,
        duration=duration,
        timezone=tz,
        reason=reason,
    )
    full_clean(window)
    window.save()
    audit_record(
        actor=actor,
        action="component.maintenance_scheduled",
        source=source,
        target=component,
        after={"starts_at": starts_at.isoformat(), "cron": cron},
        reason=reason,
    )
    return window


@transaction.atomic
def maintenance_end(
    *, slug: str, actor: User | None, source: AuditEvent.Source, reason: str = ""
) -> int:
    """End the one-off maintenance windows open now; the count, Conflict if none.

    A recurring window's current opening can't be ended on its own: delete or
    shorten the window instead.
    """
    component = component_locked(slug)
    now = timezone.now()
    candidates = MaintenanceWindow.objects.select_for_update().filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=now),
        component=component,
        starts_at__lt=now,
        cron="",
    )
    ended = [window.pk for window in candidates if window.is_open(now)]
    if not ended:
        raise Conflict(
            f"{slug!r} has no one-off maintenance window open.",
            code="not_in_maintenance",
        )
    MaintenanceWindow.objects.filter(pk__in=ended).update(ends_at=now)
    audit_record(
        actor=actor,
        action="component.maintenance_ended",
        source=source,
        target=component,
        after={"windows": len(ended)},
        reason=reason,
    )
    return len(ended)


@transaction.atomic
def component_pause(
    *, slug: str, actor: User | None, source: AuditEvent.Source, reason: str = ""
) -> Component:
    """Stop checking the component; its last state stays on show."""
    return _set_paused(slug, True, actor=actor, source=source, reason=reason)


@transaction.atomic
def component_resume(
    *, slug: str, actor: User | None, source: AuditEvent.Source, reason: str = ""
) -> Component:
    """Check the component again, at once; a heartbeat waits for its next ping."""
    component = _set_paused(slug, False, actor=actor, source=source, reason=reason)
    heartbeat_schedule_reset(component)
    return component


def _set_paused(
    slug: str,
    paused: bool,
    *,
    actor: User | None,
    source: AuditEvent.Source,
    reason: str,
) -> Component:
    component = component_locked(slug)
    if component.paused == paused:
        code = "already_paused" if paused else "not_paused"
        state = "paused" if paused else "running"
        raise Conflict(f"{slug!r} is already {state}.", code=code)
    component.paused = paused
    component.next_check_at = timezone.now()
    component.save(update_fields=["paused", "next_check_at", "updated_at"])
    audit_record(
        actor=actor,
        action="component.paused" if paused else "component.resumed",
        source=source,
        target=component,
        before={"paused": not paused},
        after={"paused": paused},
        reason=reason,
    )
    return component


BEAT_HEARTBEAT_SLUG = "console-beat"
SELF_COMPONENTS: tuple[dict[str, Any], ...] = (
    {
        "slug": "console-postgres",
        "name": "Console PostgreSQL",
        "kind": "postgres",
        "config": {"use_console_database": True},
    },
    {
        "slug": "console-redis",
        "name": "Console Redis",
        "kind": "redis",
        "config": {"use_console_redis": True},
    },
    {
        "slug": "console-workers",
        "name": "Console Celery workers",
        "kind": "celery_workers",
        "config": {"min_workers": 1},
    },
    {
        # Pinged by the beat-scheduled task components.beat_heartbeat every 10 s.
        "slug": BEAT_HEARTBEAT_SLUG,
        "name": "Console beat",
        "kind": "heartbeat",
        "config": {"period_seconds": 10, "grace_seconds": 30},
    },
)


def components_ensure_self() -> list[Component]:
    """Register the console's own PostgreSQL, Redis, workers and beat, if missing."""
    ensured = []
    for spec in SELF_COMPONENTS:
        existing = Component.objects.filter(slug=spec["slug"]).first()
        ensured.append(
            existing
            or component_create(
                **spec,
                actor=None,
                source=AuditEvent.Source.SYSTEM,
                group="console",
                interval_seconds=10,
                timeout_seconds=5.0,
                failure_threshold=2,
                success_threshold=1,
            )
        )
    return ensured
