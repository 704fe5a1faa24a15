"""Reads: uptime, latency percentiles and incidents of a component (#5 item 7).

Computed from raw results in one SQL query (``percentile_cont`` with a FILTER per
period). Results are kept ``tasks.RESULT_RETENTION``, so a longer period covers only
what is kept (``covered_since`` says from when) until Metrics serves it from rollups.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Aggregate, Count, FloatField, Min, Q, Sum

from apps.components.models import Component, StateChange, Status

PERIODS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "365d": timedelta(days=365),
}
PERCENTILES = (50, 95, 99)


class Percentile(Aggregate):
    """``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)``."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, *, percent: int, **extra: Any) -> None:
        # An int from PERCENTILES, never user input: safe in the SQL text.
        super().__init__(expression, fraction=percent / 100, **extra)


@dataclass(frozen=True, slots=True)
class PeriodStats:
    """One period's figures; None where the period has no results."""

    period: str
    since: datetime
    checks: int
    uptime_pct: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    incidents: int
    # The durations of the incidents that closed within the period.
    downtime_s: float


@dataclass(frozen=True, slots=True)
class Incident:
    """Unhealthy (or impacted) from ``started_at`` until ``ended_at`` (None: ongoing)."""

    started_at: datetime
    ended_at: datetime | None
    duration_s: float
    state: str
    message: str


@dataclass(frozen=True, slots=True)
class ComponentStats:
    slug: str
    covered_since: datetime | None
    periods: tuple[PeriodStats, ...]
    incidents: tuple[Incident, ...]


def component_stats(
    *, component: Component, now: datetime, incidents: int = 20
) -> ComponentStats:
    """Uptime and latency percentiles over each of PERIODS, and the latest incidents."""
    results = _result_figures(component, now)
    changes = _incident_figures(component, now)
    periods = tuple(
        _period(name, now - span, results, changes) for name, span in PERIODS.items()
    )
    return ComponentStats(
        component.slug,
        results["covered_since"],
        periods,
        tuple(incidents_recent(component=component, now=now, limit=incidents)),
    )


def _result_figures(component: Component, now: datetime) -> dict[str, Any]:
    figures: dict[str, Any] = {"covered_since": Min("checked_at")}
    for name, span in PERIODS.items():
        window = Q(checked_at__gte=now - span)
        figures[f"{name}_checks"] = Count("id", filter=window)
        up = window & ~Q(status=Status.UNHEALTHY)
        figures[f"{name}_up"] = Count("id", filter=up)
        for percent in PERCENTILES:
            figures[f"{name}_p{percent}"] = Percentile(
                "latency_ms", percent=percent, filter=window
            )
    longest = max(PERIODS.values())
    return component.results.filter(checked_at__gte=now - longest).aggregate(**figures)


def _incident_figures(component: Component, now: datetime) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, span in PERIODS.items():
        window = Q(at__gte=now - span)
        figures[f"{name}_opened"] = Count("id", filter=window & Q(incident_opened=True))
        figures[f"{name}_down"] = Sum("incident_duration", filter=window)
    return component.state_changes.aggregate(**figures)


def _period(
    name: str, since: datetime, results: dict[str, Any], changes: dict[str, Any]
) -> PeriodStats:
    checks = results[f"{name}_checks"]
    down = changes[f"{name}_down"]
    return PeriodStats(
        name,
        since,
        checks,
        round(results[f"{name}_up"] * 100 / checks, 3) if checks else None,
        _ms(results[f"{name}_p50"]),
        _ms(results[f"{name}_p95"]),
        _ms(results[f"{name}_p99"]),
        changes[f"{name}_opened"],
        down.total_seconds() if down is not None else 0.0,
    )


def _ms(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def incidents_recent(
    *, component: Component, now: datetime, limit: int = 20
) -> list[Incident]:
    """The component's latest incidents, newest first, each with its duration."""
    changes = list(
        component.state_changes.filter(
            Q(incident_opened=True) | Q(incident_duration__isnull=False)
        ).order_by("-at", "-id")[: limit * 2 + 1]
    )
    incidents = []
    closing: StateChange | None = None
    for change in changes:  # newest first: a close comes before its open
        if not change.incident_opened:
            closing = change
            continue
        ended = closing.at if closing is not None else None
        incidents.append(
            Incident(
                change.at,
                ended,
                ((ended or now) - change.at).total_seconds(),
                change.to_state,
                change.message,
            )
        )
        closing = None
    return incidents[:limit]
