"""Writes of the components app: registry, scheduling, recording results."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from celery import current_app
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from apps.components.checkers.base import CheckOutcome
from apps.components.checkers.runner import run_jobs
from apps.components.models import (
    Component,
    ComponentState,
    HealthResult,
    Heartbeat,
    Kind,
    MaintenanceWindow,
)
from apps.components.recording import results_record
from apps.components.selectors import (
    check_jobs_for_claim,
    component_config_public,
    component_get,
)
from apps.core.exceptions import Conflict, ValidationFailed
from apps.core.models import AuditEvent
from apps.core.services import audit_record

log = structlog.get_logger(__name__)

RUN_BATCH_TASK = "components.run_batch"
# Added to a claim beyond timeout * attempts: time to write the batch's results.
CLAIM_MARGIN_SECONDS = 10
# A dispatch tick stops after this many batches; the next tick takes the rest.
MAX_BATCHES_PER_TICK = 50


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
) -> Component:
    """Register a component, validating its config against its kind's schema."""
    # A heartbeat acts on its first missed or failed ping, as Healthchecks does.
    pushed = kind == Kind.HEARTBEAT
    component = Component(
        name=name,
        slug=slug,
        kind=kind,
        config=config,
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
    _full_clean(component)
    component.save()
    ComponentState.objects.create(component=component)
    if pushed:
        Heartbeat.objects.create(component=component)
    component.depends_on.set(depends_on)
    audit_record(
        actor=actor,
        action="component.created",
        source=source,
        target=component,
        after={"kind": kind, "config": component_config_public(component=component)},
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
    _full_clean(window)
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
    component = _locked(slug)
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
    # Like Healthchecks on resume: the pings missed while paused don't count.
    Heartbeat.objects.filter(component=component).update(
        expected_at=None,
        alert_after=None,
        last_start_at=None,
        last_start_rid=None,
        long_run_reported=False,
    )
    return component


def _set_paused(
    slug: str,
    paused: bool,
    *,
    actor: User | None,
    source: AuditEvent.Source,
    reason: str,
) -> Component:
    component = _locked(slug)
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


def _locked(slug: str) -> Component:
    return Component.objects.select_for_update().get(pk=component_get(slug=slug).pk)


def components_dispatch_due(*, now: datetime, batch_size: int = 100) -> int:
    """Claim due components in batches and enqueue a check batch for each; the count."""
    total = 0
    for _ in range(MAX_BATCHES_PER_TICK):
        claimed = _claim_batch(now=now, batch_size=batch_size)
        total += claimed
        if claimed < batch_size:
            break
    return total


@transaction.atomic
def _claim_batch(*, now: datetime, batch_size: int) -> int:
    # Due on schedule, or held by a claim that expired (its worker died).
    # Heartbeats are pushed: the heartbeat evaluator watches them instead.
    due = (
        Q(enabled=True, paused=False)
        & ~Q(kind=Kind.HEARTBEAT)
        & (
            Q(next_check_at__lte=now, claimed_until__isnull=True)
            | Q(claimed_until__lte=now)
        )
    )
    ids = list(
        Component.objects.select_for_update(skip_locked=True)
        .filter(due)
        .order_by("next_check_at")
        .values_list("id", flat=True)[:batch_size]
    )
    if not ids:
        return 0
    token = uuid.uuid4()
    Component.objects.filter(id__in=ids).update(
        # Jitter (≤ 10 % of the interval, ≤ 5 s) spreads components due together.
        next_check_at=RawSQL(
            "%s + make_interval(secs => interval_seconds"
            " + random() * LEAST(interval_seconds * 0.1, 5))",
            (now,),
            output_field=models.DateTimeField(),
        ),
        claimed_until=RawSQL(
            "%s + make_interval(secs => timeout_seconds * (retries + 1) + %s)",
            (now, CLAIM_MARGIN_SECONDS),
            output_field=models.DateTimeField(),
        ),
        claim_token=token,
    )
    _enqueue_on_commit(ids, token)
    return len(ids)


def _enqueue_on_commit(ids: list[int], token: uuid.UUID) -> None:
    transaction.on_commit(
        lambda: current_app.send_task(RUN_BATCH_TASK, args=[ids, str(token)])
    )


@transaction.atomic
def component_check_now(
    *, slug: str, actor: User | None, source: AuditEvent.Source
) -> Component:
    """Run the component's check now, outside its schedule; Conflict if one runs."""
    locked = _locked(slug)
    if locked.kind == Kind.HEARTBEAT:
        raise Conflict(
            f"{slug!r} is a heartbeat: it is pushed, not checked.",
            code="push_component",
        )
    now = timezone.now()
    if locked.claimed_until is not None and locked.claimed_until > now:
        raise Conflict(
            f"A check of {slug!r} is already running.", code="check_in_progress"
        )
    attempts = locked.retries + 1
    locked.claim_token = uuid.uuid4()
    locked.claimed_until = now + timedelta(
        seconds=locked.timeout_seconds * attempts + CLAIM_MARGIN_SECONDS
    )
    locked.save(update_fields=["claim_token", "claimed_until", "updated_at"])
    audit_record(
        actor=actor, action="component.check_requested", source=source, target=locked
    )
    _enqueue_on_commit([locked.pk], locked.claim_token)
    return locked


def components_run_batch(
    *, component_ids: Sequence[int], claim_token: uuid.UUID
) -> int:
    """Check the components still held under ``claim_token`` and record the results."""
    jobs = check_jobs_for_claim(component_ids=component_ids, claim_token=claim_token)
    if not jobs:
        return 0
    outcomes: dict[int, CheckOutcome] = dict(
        zip((job.component_id for job in jobs), run_jobs(jobs), strict=True)
    )
    transitions = results_record(
        claim_token=claim_token, outcomes=outcomes, now=timezone.now()
    )
    log.info(
        "component.batch_checked", checks=len(outcomes), transitions=len(transitions)
    )
    return len(outcomes)


def results_prune(*, older_than: datetime, batch_size: int = 5000) -> int:
    """Delete results checked before ``older_than``, in short batches; the count."""
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                HealthResult.objects.filter(checked_at__lt=older_than).values_list(
                    "id", flat=True
                )[:batch_size]
            )
            if ids:
                HealthResult.objects.filter(id__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted


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
)


def components_ensure_self() -> list[Component]:
    """Register the console's own PostgreSQL, Redis and workers, if missing."""
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


def _full_clean(instance: models.Model) -> None:
    try:
        instance.full_clean()
    except DjangoValidationError as exc:
        fields = {name: list(msgs) for name, msgs in exc.message_dict.items()}
        raise ValidationFailed(fields) from exc
