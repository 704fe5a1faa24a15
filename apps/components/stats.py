"""Reads: uptime, latency percentiles and incidents of a component (#5 item 7).

Uptime and percentiles come from the metric rollups of the series every check
records (``component.check.up`` and ``component.check.latency_ms``, see
``apps.components.recording``): whole days, hours and minutes of each period
(``apps.metrics.selectors.metrics_summaries``), so a year reads a few hundred
rollup rows, not a year of results. A period covers its whole minutes up to the
last rolled minute (10 to 80 s before now). Incidents come from StateChange.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, Sum

from apps.components.models import Component, StateChange
from apps.components.selectors import CHECK_LATENCY_METRIC, CHECK_UP_METRIC
from apps.metrics.selectors import Summary, metrics_summaries

PERIODS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "365d": timedelta(days=365),
}


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
    # The start of the oldest rollup the longest period read: data reach back no
    # further (the first check recorded, or the rollups' retention).
    covered_since: datetime | None
    periods: tuple[PeriodStats, ...]
    incidents: tuple[Incident, ...]


def component_stats(
    *, component: Component, now: datetime, incidents: int = 20
) -> ComponentStats:
    """Uptime and latency percentiles over each of PERIODS, and the latest incidents."""
    windows = [(now - span, now) for span in PERIODS.values()]
    tags = {"component": component.slug}
    ups = metrics_summaries(
        name=CHECK_UP_METRIC, tags=tags, windows=windows, percentiles=False
    )
    latencies = metrics_summaries(name=CHECK_LATENCY_METRIC, tags=tags, windows=windows)
    changes = _incident_figures(component, now)
    periods = tuple(
        _period(name, start, up, latency, changes)
        for name, (start, _), up, latency in zip(
            PERIODS, windows, ups, latencies, strict=True
        )
    )
    return ComponentStats(
        component.slug,
        ups[-1].first,
        periods,
        tuple(incidents_recent(component=component, now=now, limit=incidents)),
    )


def _incident_figures(component: Component, now: datetime) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, span in PERIODS.items():
        window = Q(at__gte=now - span)
        figures[f"{name}_opened"] = Count("id", filter=window & Q(incident_opened=True))
        figures[f"{name}_down"] = Sum("incident_duration", filter=window)
    return component.state_changes.aggregate(**figures)


def _period(
    name: str,
    since: datetime,
    up: Summary,
    latency: Summary,
    changes: dict[str, Any],
) -> PeriodStats:
    down = changes[f"{name}_down"]
    return PeriodStats(
        name,
        since,
        up.count,
        round(up.sum * 100 / up.count, 3) if up.count else None,
        _ms(latency.p50),
        _ms(latency.p95),
        _ms(latency.p99),
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
