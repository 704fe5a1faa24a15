"""Components, their current state, results, state changes and maintenance windows."""

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from pydantic_core import ErrorDetails

from apps.components.checkers import KINDS
from apps.components.notifications.models import (  # noqa: F401 - registers them here
    Notification,
    NotificationChannel,
)


class Kind(models.TextChoices):
    HTTP = "http"
    TCP = "tcp"
    POSTGRES = "postgres"
    REDIS = "redis"
    COMMAND = "command"
    CELERY_WORKERS = "celery_workers"
    PYTHON = "python"
    HEARTBEAT = "heartbeat"
    DNS = "dns"
    TLS = "tls"
    CELERY_QUEUE = "celery_queue"


class Status(models.TextChoices):
    """The outcome of one check."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


class State(models.TextChoices):
    """A component's current state, decided by the state machine."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    # Failing while a dependency is unhealthy: shown, not alerted separately.
    IMPACTED = "impacted"


class Component(models.Model):
    """Something the console checks on a schedule."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    group = models.CharField(max_length=100, blank=True, db_index=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    owner = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Validated per kind by the checker's schema; may hold secrets (see
    # selectors.component_config_public, the only way it is shown).
    config = models.JSONField(default=dict, blank=True)
    interval_seconds = models.PositiveIntegerField(default=30)
    timeout_seconds = models.FloatField(default=10.0)
    retries = models.PositiveSmallIntegerField(default=0)
    failure_threshold = models.PositiveSmallIntegerField(default=3)
    success_threshold = models.PositiveSmallIntegerField(default=2)
    enabled = models.BooleanField(default=True)
    paused = models.BooleanField(default=False)
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="dependents"
    )
    next_check_at = models.DateTimeField(default=timezone.now)
    # Set by the dispatcher, cleared when the batch is written. A claim whose
    # ``claimed_until`` has passed was lost (worker killed) and is claimable again.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["group", "name"]
        indexes = [
            models.Index(
                fields=["next_check_at"],
                condition=Q(enabled=True, paused=False),
                name="component_due_idx",
            ),
            models.Index(
                fields=["claimed_until"],
                condition=Q(claimed_until__isnull=False),
                name="component_claimed_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=Kind.values), name="component_known_kind"
            ),
            models.CheckConstraint(
                condition=Q(interval_seconds__gte=1), name="component_interval_min"
            ),
            models.CheckConstraint(
                condition=Q(timeout_seconds__gt=0, timeout_seconds__lte=300),
                name="component_timeout_range",
            ),
            models.CheckConstraint(
                condition=Q(retries__lte=5), name="component_retries_max"
            ),
            models.CheckConstraint(
                condition=Q(failure_threshold__gte=1, success_threshold__gte=1),
                name="component_thresholds_min",
            ),
            models.CheckConstraint(
                condition=Q(claimed_until__isnull=True, claim_token__isnull=True)
                | Q(claimed_until__isnull=False, claim_token__isnull=False),
                name="component_claim_whole",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        errors = config_errors(self.kind, self.config)
        if errors:
            raise ValidationError(
                {
                    "config": [
                        f"{at}: {msg}" for at, msgs in errors.items() for msg in msgs
                    ]
                }
            )


def config_errors(kind: str, config: Any) -> dict[str, list[str]]:
    """What ``kind``'s schema finds wrong in ``config``, by path (``config.url``);
    empty when it is valid or the kind is unknown (the kind's choices report that)."""
    from pydantic import ValidationError as SchemaError

    checker = KINDS.get(kind)
    if checker is None:
        return {}
    try:
        checker.config_model.model_validate(config)
    except SchemaError as exc:
        errors: dict[str, list[str]] = {}
        for error in exc.errors():
            path = ".".join(["config", *(str(part) for part in error["loc"])])
            errors.setdefault(path, []).append(error["msg"])
        return errors
    return {}


def _schema_message(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "config"
    return f"{where}: {error['msg']}"


class ComponentState(models.Model):
    """The one current state of a component."""

    component = models.OneToOneField(
        Component, on_delete=models.CASCADE, primary_key=True, related_name="state"
    )
    state = models.CharField(max_length=10, choices=State.choices, default="unknown")
    since = models.DateTimeField(default=timezone.now)
    consecutive_failures = models.PositiveIntegerField(default=0)
    consecutive_successes = models.PositiveIntegerField(default=0)
    # Set while an incident is open (entered unhealthy/impacted, not recovered).
    incident_started_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=10, choices=Status.choices, blank=True)
    last_latency_ms = models.FloatField(null=True, blank=True)
    last_message = models.TextField(blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # Kept by ``component_uptimes_refresh`` (every minute), not the state machine:
    # the share of checks not unhealthy in the 24 whole hours before
    # ``uptime_24h_until``, from hour rollups; None without any.
    uptime_24h_pct = models.FloatField(null=True, blank=True)
    uptime_24h_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=State.values), name="componentstate_known"
            ),
            models.CheckConstraint(
                condition=Q(consecutive_failures=0) | Q(consecutive_successes=0),
                name="componentstate_one_streak",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.component_id}: {self.state}"


class HealthResult(models.Model):
    """One check's outcome. Written in bulk, pruned by age."""

    # No index of its own: healthresult_recent_idx leads with the component, so
    # it serves every lookup by component (and the cascade) for one less btree
    # to write per result.
    component = models.ForeignKey(
        Component, on_delete=models.CASCADE, related_name="results", db_index=False
    )
    status = models.CharField(max_length=10, choices=Status.choices)
    latency_ms = models.FloatField()
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)
    in_maintenance = models.BooleanField(default=False)
    trace_id = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [
            models.Index(
                fields=["component", "-checked_at"], name="healthresult_recent_idx"
            ),
            # Rows arrive in time order, so a BRIN index serves pruning cheaply.
            BrinIndex(fields=["checked_at"], name="healthresult_age_brin"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="healthresult_known"
            ),
            models.CheckConstraint(
                condition=Q(latency_ms__gte=0), name="healthresult_latency_min"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.component_id} {self.status} at {self.checked_at:%H:%M:%S}"


class StateChange(models.Model):
    """A transition; entering unhealthy opens an incident, recovering closes it."""

    component = models.ForeignKey(
        Component, on_delete=models.CASCADE, related_name="state_changes"
    )
    from_state = models.CharField(max_length=10, choices=State.choices)
    to_state = models.CharField(max_length=10, choices=State.choices)
    at = models.DateTimeField(default=timezone.now)
    in_maintenance = models.BooleanField(default=False)
    incident_opened = models.BooleanField(default=False)
    # Set on the change that closes an incident: how long the component was down.
    incident_duration = models.DurationField(null=True, blank=True)
    message = models.TextField(blank=True)
    trace_id = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["component", "-at"], name="statechange_idx")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(from_state=models.F("to_state")),
                name="statechange_changes",
            ),
            models.CheckConstraint(
                condition=Q(incident_opened=False) | Q(incident_duration__isnull=True),
                name="statechange_open_or_close",
            ),
            models.CheckConstraint(
                condition=Q(incident_duration__isnull=True)
                | Q(incident_duration__gte=timedelta(0)),
                name="statechange_duration_min",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.component_id}: {self.from_state} → {self.to_state}"


class MaintenanceWindow(models.Model):
    """A one-off window [starts_at, ends_at), or a recurring one from a cron expression.

    A recurring window opens at each cron time (in ``timezone``) for ``duration``,
    from ``starts_at`` until ``ends_at`` (forever when empty).
    """

    component = models.ForeignKey(
        Component, on_delete=models.CASCADE, related_name="maintenance_windows"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    cron = models.CharField(max_length=100, blank=True)
    duration = models.DurationField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__isnull=True)
                | Q(ends_at__gt=models.F("starts_at")),
                name="maintenance_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(cron="", duration__isnull=True, ends_at__isnull=False)
                | (~Q(cron="") & Q(duration__gt=timedelta(0))),
                name="maintenance_oneoff_or_recurring",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.component_id} maintenance from {self.starts_at:%Y-%m-%d %H:%M}"

    def is_open(self, at: datetime) -> bool:
        """Whether the window covers the instant ``at``."""
        if at < self.starts_at or (self.ends_at is not None and at >= self.ends_at):
            return False
        if not self.cron or self.duration is None:
            return True
        from zoneinfo import ZoneInfo

        from croniter import croniter

        local = at.astimezone(ZoneInfo(self.timezone))
        # The latest cron time at or before ``at``: get_prev is exclusive, so it
        # starts a second later, and in the second before a fire that finds the
        # fire itself, after ``at``: then the one before it.
        times = croniter(self.cron, local + timedelta(seconds=1))
        opened = times.get_prev(datetime)
        if opened > local:
            opened = times.get_prev(datetime)
        return bool(opened <= local < opened + self.duration)

    def clean(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from croniter import croniter

        if self.cron and not croniter.is_valid(self.cron):
            raise ValidationError({"cron": ["Not a valid cron expression."]})
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError({"timezone": ["Unknown time zone."]}) from exc


class Heartbeat(models.Model):
    """The push side of a heartbeat component: its ping URL and what its pings said.

    ``alert_after`` is the next instant the scheduler must look at it (a ping due by
    then plus grace, or a started run's grace); empty while nothing can be late, as
    before the first ping (Healthchecks' "new").
    """

    component = models.OneToOneField(
        Component, on_delete=models.CASCADE, primary_key=True, related_name="heartbeat"
    )
    ping_uuid = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    last_ping_at = models.DateTimeField(null=True, blank=True)
    last_start_at = models.DateTimeField(null=True, blank=True)
    # The client's ``rid`` that pairs a start with its success or failure.
    last_start_rid = models.UUIDField(null=True, blank=True)
    last_duration = models.DurationField(null=True, blank=True)
    expected_at = models.DateTimeField(null=True, blank=True)
    alert_after = models.DateTimeField(null=True, blank=True)
    # The current run was already reported as running too long.
    long_run_reported = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(
                fields=["alert_after"],
                condition=Q(alert_after__isnull=False),
                name="heartbeat_alert_idx",
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(last_duration__isnull=True)
                | Q(last_duration__gte=timedelta(0)),
                name="heartbeat_duration_min",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.component_id} heartbeat"
