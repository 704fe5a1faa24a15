"""Shapes of the components API. Config goes out only through the masking selector."""

from datetime import datetime
from typing import Any

from django.urls import reverse
from django.utils import timezone
from ninja import Field, Schema
from ninja.pagination import LimitOffsetPagination
from pydantic import AwareDatetime, ConfigDict, field_validator

from apps.components.lateness import component_state_shown
from apps.components.models import Component
from apps.components.selectors import component_config_public


class Pagination(LimitOffsetPagination):
    class Input(Schema):
        limit: int = Field(100, ge=1, le=500)
        offset: int = Field(0, ge=0)


class ComponentFilter(Schema):
    group: str | None = None
    kind: str | None = None
    state: str | None = Field(None, description="e.g. healthy, unhealthy")


class StateOut(Schema):
    state: str
    since: datetime
    consecutive_failures: int
    consecutive_successes: int
    incident_started_at: datetime | None
    last_status: str
    last_latency_ms: float | None
    last_message: str
    last_checked_at: datetime | None
    late: bool = Field(
        False, description="A heartbeat past its due time and grace, not yet recorded."
    )


class ComponentOut(Schema):
    slug: str
    name: str
    group: str
    tags: list[str]
    owner: str
    description: str
    kind: str
    config: dict[str, Any] = Field(..., description="Secrets are masked.")
    interval_seconds: int
    timeout_seconds: float
    retries: int
    failure_threshold: int
    success_threshold: int
    enabled: bool
    paused: bool
    depends_on: list[str]
    state: StateOut | None
    uptime_24h_pct: float | None = Field(
        None,
        description="Checks not unhealthy in the 24 whole hours before"
        " uptime_24h_until, in % (from hour rollups, refreshed every minute); null"
        " before the first refresh or without checks in those hours.",
    )
    uptime_24h_until: datetime | None = Field(
        None,
        description="The end of uptime_24h_pct's window: the start of the hour it"
        " was last refreshed in.",
    )
    ping_url: str | None = Field(None, description="Heartbeats: where to ping.")

    @staticmethod
    def resolve_config(obj: Component) -> dict[str, Any]:
        return component_config_public(component=obj)

    @staticmethod
    def resolve_depends_on(obj: Component) -> list[str]:
        return [dependency.slug for dependency in obj.depends_on.all()]

    @staticmethod
    def resolve_state(obj: Component) -> dict[str, Any] | None:
        shown = component_state_shown(component=obj, now=timezone.now())
        if shown is None:
            return None
        stored = {
            name: getattr(obj.state, name)
            for name in StateOut.model_fields
            if name != "late"
        }
        return stored | {
            "state": shown.state,
            "since": shown.since,
            "last_message": shown.message,
            "late": shown.late,
        }

    @staticmethod
    def resolve_uptime_24h_pct(obj: Component) -> float | None:
        return getattr(obj, "uptime_pct", None)

    @staticmethod
    def resolve_uptime_24h_until(obj: Component) -> datetime | None:
        return getattr(obj, "uptime_until", None)

    @staticmethod
    def resolve_ping_url(obj: Component) -> str | None:
        beat = getattr(obj, "heartbeat", None)
        return reverse("ping", args=[beat.ping_uuid]) if beat else None


class ComponentIn(Schema):
    """A new component. Unknown keys are errors, so a typo isn't silently dropped."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=200)
    slug: str = Field(..., max_length=100, pattern=r"^[-a-zA-Z0-9_]+$")
    kind: str = Field(..., description="http, tcp, postgres, redis, heartbeat …")
    config: dict[str, Any] = Field(..., description="The kind's fields.")
    group: str = Field("", max_length=100)
    tags: list[str] = []
    owner: str = Field("", max_length=200)
    description: str = ""
    interval_seconds: int = Field(30, ge=1)
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    retries: int = Field(0, ge=0, le=5)
    failure_threshold: int | None = Field(None, ge=1, description="Default: by kind.")
    success_threshold: int | None = Field(None, ge=1, description="Default: by kind.")
    enabled: bool = True
    depends_on: list[str] = Field([], description="Slugs of other components.")
    notification_channels: list[str] = Field([], description="Channel names.")


class ComponentPatchIn(Schema):
    """The fields to change; the slug is fixed. A secret sent back masked is kept.
    A field left out is unchanged; null is refused."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    kind: str | None = None
    config: dict[str, Any] | None = None
    group: str | None = Field(None, max_length=100)
    tags: list[str] | None = None
    owner: str | None = Field(None, max_length=200)
    description: str | None = None
    interval_seconds: int | None = Field(None, ge=1)
    timeout_seconds: float | None = Field(None, gt=0, le=300)
    retries: int | None = Field(None, ge=0, le=5)
    failure_threshold: int | None = Field(None, ge=1)
    success_threshold: int | None = Field(None, ge=1)
    enabled: bool | None = None
    depends_on: list[str] | None = Field(None, description="Slugs; replaces the list.")
    notification_channels: list[str] | None = Field(
        None, description="Replaces the list."
    )
    reason: str = Field("", max_length=2000)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("leave the field out instead of sending null")
        return value


class ResultsFilter(Schema):
    since: AwareDatetime | None = Field(None, description="Checked at or after.")
    until: AwareDatetime | None = Field(None, description="Checked before.")
    cursor: str | None = Field(None, description="next_cursor of the page before.")
    limit: int = Field(100, ge=1, le=1000)


class ResultOut(Schema):
    status: str
    latency_ms: float
    message: str
    details: dict[str, Any]
    checked_at: datetime
    in_maintenance: bool
    trace_id: str


class ResultsPageOut(Schema):
    items: list[ResultOut]
    next_cursor: str | None = Field(None, description="Absent on the last page.")


class StateChangeOut(Schema):
    at: datetime
    from_state: str
    to_state: str
    in_maintenance: bool
    incident_opened: bool
    incident_duration_s: float | None = Field(
        None, description="On the change that closed an incident."
    )
    message: str

    @staticmethod
    def resolve_incident_duration_s(obj: Any) -> float | None:
        duration = obj.incident_duration
        return duration.total_seconds() if duration is not None else None


class SinceFilter(Schema):
    since: AwareDatetime | None = None


class ReasonIn(Schema):
    reason: str = Field("", max_length=2000)


class CheckRequestedOut(Schema):
    slug: str
    claimed_until: datetime | None


class MaintenanceIn(Schema):
    starts_at: AwareDatetime | None = Field(None, description="Default: now.")
    ends_at: AwareDatetime | None = Field(None, description="Required unless cron.")
    cron: str = Field("", description="Recurring: opens at each match.")
    duration_seconds: int | None = Field(None, ge=1, description="With cron.")
    timezone: str = "UTC"
    reason: str = Field("", max_length=200)


class MaintenanceOut(Schema):
    id: int
    starts_at: datetime
    ends_at: datetime | None
    cron: str
    duration_s: float | None
    timezone: str
    reason: str

    @staticmethod
    def resolve_duration_s(obj: Any) -> float | None:
        return obj.duration.total_seconds() if obj.duration is not None else None


class MaintenanceEndedOut(Schema):
    ended: int


class PeriodStatsOut(Schema):
    period: str = Field(..., description="24h, 7d, 30d or 365d.")
    since: datetime
    checks: int
    uptime_pct: float | None = Field(..., description="Results not unhealthy, in %.")
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    incidents: int = Field(..., description="Incidents opened in the period.")
    downtime_s: float = Field(..., description="Incidents closed in the period.")


class IncidentOut(Schema):
    started_at: datetime
    ended_at: datetime | None = Field(..., description="None while it goes on.")
    duration_s: float
    state: str
    message: str


class ComponentStatsOut(Schema):
    slug: str
    covered_since: datetime | None = Field(
        ...,
        description="Start of the oldest check rollup read: periods reach back no"
        " further.",
    )
    periods: list[PeriodStatsOut]
    incidents: list[IncidentOut] = Field(..., description="The latest, newest first.")
