"""Reads of the breakers app: rows from PostgreSQL, live state from Redis."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

import redis
from django.db.models import Max, OuterRef, QuerySet, Subquery
from django.urls import reverse

from apps.breakers.agent import default_agent
from apps.breakers.models import Breaker, BreakerEvent
from apps.core.exceptions import NotFound
from apps.core.trace_index import TraceItem


@dataclass(frozen=True, slots=True)
class BreakerView:
    """A breaker's state and window as the fleet (or, degraded, this process) sees it."""

    name: str
    state: str
    calls: int
    failures: int
    slow: int
    # "fleet" (Redis) or "local" (this process only: Redis unreachable).
    source: str
    degraded: str

    @property
    def failure_rate(self) -> float | None:
        return round(self.failures * 100 / self.calls, 1) if self.calls else None

    @property
    def slow_rate(self) -> float | None:
        return round(self.slow * 100 / self.calls, 1) if self.calls else None


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """A breaker's row (with its last transition) and its live view, for the doors."""

    breaker: Breaker
    view: BreakerView

    @property
    def last_transition_at(self) -> datetime | None:
        return getattr(self.breaker, "last_transition_at", None)


def breaker_statuses(*, name: str | None = None) -> list[BreakerStatus]:
    """Every breaker (or just ``name``, NotFound if missing) with its live view."""
    rows = [breaker_get(name=name)] if name is not None else list(breaker_list())
    views = breaker_views(names=[row.name for row in rows])
    return [BreakerStatus(row, views[row.name]) for row in rows]


def breaker_list() -> QuerySet[Breaker]:
    """Every breaker by name, with its last transition's time and target state."""
    last = BreakerEvent.objects.filter(breaker=OuterRef("pk")).order_by("-at")
    return Breaker.objects.annotate(
        last_transition_at=Max("events__at"),
        last_to_state=Subquery(last.values("to_state")[:1]),
    ).order_by("name")


def breaker_get(*, name: str) -> Breaker:
    """Breaker ``name`` (annotated like ``breaker_list``), or NotFound."""
    breaker = breaker_list().filter(name=name).first()
    if breaker is None:
        raise NotFound(f"no breaker {name!r}", extra={"name": name})
    return breaker


def breaker_events(*, name: str, limit: int = 50) -> QuerySet[BreakerEvent]:
    """The newest transitions of breaker ``name``."""
    return BreakerEvent.objects.filter(breaker__name=name).select_related("actor")[
        :limit
    ]


def breaker_views(*, names: list[str]) -> dict[str, BreakerView]:
    """Live state of each breaker: Redis, or this process's own view if unreachable."""
    agent = default_agent()
    try:
        rows = agent.fleet.read_states(names) if names else {}
    except redis.RedisError as exc:
        reason = f"Redis unreachable ({type(exc).__name__}): this process's view"
        return {name: _local_view(name, reason) for name in names}
    degraded = agent.health().reason
    return {name: _fleet_view(name, row, degraded) for name, row in rows.items()}


def _fleet_view(name: str, row: dict[str, str], degraded: str) -> BreakerView:
    return BreakerView(
        name=name,
        state=row.get("state", "CLOSED"),
        calls=int(row.get("w_calls", 0)),
        failures=int(row.get("w_fail", 0)),
        slow=int(row.get("w_slow", 0)),
        source="fleet",
        degraded=degraded,
    )


def _local_view(name: str, reason: str) -> BreakerView:
    breaker = default_agent().breakers.get(name)
    if breaker is None:
        return BreakerView(name, "UNKNOWN", 0, 0, 0, "local", reason)
    state, (calls, failures, slow) = breaker.local_view()
    return BreakerView(name, state.value, calls, failures, slow, "local", reason)


def breakers_readiness() -> dict[str, str]:
    """The /readyz detail for breakers: "warn" (never "fail") while degraded."""
    health = default_agent().health()
    return {
        "status": "warn" if health.degraded else "pass",
        "error": health.reason,
        "breakers": str(health.breakers),
    }


def breaker_trace_items(trace_id: str) -> list[TraceItem]:
    """Breaker transitions and forced actions carrying ``trace_id`` (a trace source)."""
    events = BreakerEvent.objects.filter(trace_id=trace_id).select_related("breaker")
    return [
        TraceItem(
            at=event.at,
            kind="breaker",
            summary=f"breaker {event.breaker.name}: {event.from_state} → "
            f"{event.to_state} ({event.reason})",
            url=reverse("admin:breakers_breaker_change", args=[event.breaker_id]),
        )
        for event in events[:500]
    ]


class BreakerTile(TypedDict):
    """One breaker as the dashboard's breaker panel shows it."""

    name: str
    state: str
    failure_rate: float | None
    slow_rate: float | None
    calls: int
    last_transition_at: str | None
    url: str


def breakers_live() -> dict[str, Any]:
    """The dashboard's breakers snapshot: every breaker with its fleet view."""
    return {
        "breakers": [
            BreakerTile(
                name=status.breaker.name,
                state=status.view.state,
                failure_rate=status.view.failure_rate,
                slow_rate=status.view.slow_rate,
                calls=status.view.calls,
                last_transition_at=_iso(status.last_transition_at),
                url=reverse("admin:breakers_breaker_change", args=[status.breaker.pk]),
            )
            for status in breaker_statuses()
        ]
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
