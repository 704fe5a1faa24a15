"""Reads of the components app."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from django.db.models import (
    F,
    Q,
    QuerySet,
    Window,
)
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils import timezone

from apps.components.checkers import KINDS
from apps.components.checkers.base import MASK, secret_fields
from apps.components.lateness import component_state_shown, state_shown
from apps.components.models import (
    Component,
    ComponentState,
    HealthResult,
    Heartbeat,
    MaintenanceWindow,
    State,
    StateChange,
)
from apps.components.state import DOWN
from apps.core.exceptions import NotFound, ValidationFailed
from apps.core.trace_index import TraceItem

# The series every check records (apps.components.recording), tagged
# {"component": slug}: the kept 24 h uptime and the statistics read their rollups.
CHECK_UP_METRIC = "component.check.up"
CHECK_LATENCY_METRIC = "component.check.latency_ms"


def component_get(*, slug: str) -> Component:
    """The component ``slug``, or NotFound."""
    component = Component.objects.filter(slug=slug).first()
    if component is None:
        raise NotFound(f"No component {slug!r}.", code="component_not_found")
    return component


def components_named(*, slugs: Iterable[str]) -> list[Component]:
    """The components ``slugs`` name; ValidationFailed on depends_on for unknown ones."""
    wanted = list(dict.fromkeys(slugs))
    found = list(Component.objects.filter(slug__in=wanted))
    missing = sorted(set(wanted) - {component.slug for component in found})
    if missing:
        raise ValidationFailed({"depends_on": [f"No component {missing}."]})
    return found


def heartbeat_ping_uuid(*, slug: str) -> UUID | None:
    """The ping UUID of the heartbeat component ``slug``; None if there is none."""
    return (
        Heartbeat.objects.filter(component__slug=slug)
        .values_list("ping_uuid", flat=True)
        .first()
    )


def component_list() -> QuerySet[Component]:
    """Components with their state, ``uptime_pct`` and ``uptime_until``: the
    share of checks not unhealthy in the 24 whole hours before ``uptime_until``,
    as the state row keeps it (``component_uptimes_refresh``, every minute); None
    without a state row, a refresh or any hour rollups."""
    return (
        Component.objects.select_related("state", "heartbeat")
        .prefetch_related("depends_on")
        .annotate(
            uptime_pct=F("state__uptime_24h_pct"),
            uptime_until=F("state__uptime_24h_until"),
        )
    )


def component_config_public(*, component: Component) -> dict[str, Any]:
    """The component's config with every secret field masked: safe to render."""
    kind = KINDS.get(component.kind)
    hidden = secret_fields(kind.config_model) if kind else frozenset()
    return {
        key: MASK
        if key in hidden and value not in (None, "", {}, [])
        else _public(value)
        for key, value in component.config.items()
    }


def _public(value: Any) -> Any:
    """``value`` with the password of a URL (``scheme://user:pass@host``) masked."""
    if not isinstance(value, str) or "://" not in value:
        return value
    parts = urlsplit(value)
    if not parts.password:
        return value
    netloc = parts.netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def component_ids_in_maintenance(
    *, component_ids: Iterable[int], now: datetime
) -> set[int]:
    """Which of ``component_ids`` are inside a maintenance window at ``now``."""
    windows = MaintenanceWindow.objects.filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=now),
        component_id__in=list(component_ids),
        starts_at__lte=now,
    )
    return {window.component_id for window in windows if window.is_open(now)}


@dataclass(frozen=True, slots=True)
class DependencyView:
    """The dependencies of some components, and which dependencies are down."""

    edges: dict[int, frozenset[int]]
    down: frozenset[int]


def component_dependencies(*, component_ids: Iterable[int]) -> DependencyView:
    """Each component's dependencies, with the ones that are down now."""
    edges: dict[int, set[int]] = {}
    for source, target in Component.depends_on.through.objects.filter(
        from_component_id__in=list(component_ids)
    ).values_list("from_component_id", "to_component_id"):
        edges.setdefault(source, set()).add(target)
    targets = set().union(*edges.values()) if edges else set()
    down = ComponentState.objects.filter(
        component_id__in=targets, state__in=DOWN
    ).values_list("component_id", flat=True)
    return DependencyView(
        {source: frozenset(t) for source, t in edges.items()}, frozenset(down)
    )


# The IETF health-check draft's statuses for each component state.
HEALTH_STATUS = {
    State.HEALTHY: "pass",
    State.DEGRADED: "warn",
    State.UNKNOWN: "warn",
    State.UNHEALTHY: "fail",
    State.IMPACTED: "fail",
}
_HEALTH_ORDER = ("pass", "warn", "fail")


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One component in ``/health``."""

    slug: str
    kind: str
    state: str
    status: str
    latency_ms: float | None
    checked_at: datetime | None
    message: str


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The aggregate health of the enabled, unpaused components."""

    status: str
    checks: tuple[HealthCheck, ...] = ()


def health_report(*, detailed: bool, now: datetime | None = None) -> HealthReport:
    """The worst status over the watched components (an overdue heartbeat fails, see
    ``lateness``); each one's too if ``detailed``."""
    now = now or timezone.now()
    watched = ComponentState.objects.filter(
        component__enabled=True, component__paused=False
    )
    if not detailed:
        rows = watched.values_list("state", "component__heartbeat__alert_after")
        shown = (
            state_shown(state=state, alert_after=alert_after, now=now).state
            for state, alert_after in rows.distinct()
        )
        return HealthReport(_worst(HEALTH_STATUS[State(s)] for s in shown))
    checks = tuple(
        _health_check(row, now)
        for row in watched.order_by("component__slug").values(
            "component__slug",
            "component__kind",
            "state",
            "last_latency_ms",
            "last_checked_at",
            "last_message",
            "component__heartbeat__alert_after",
            "component__heartbeat__last_ping_at",
        )
    )
    return HealthReport(_worst(check.status for check in checks), checks)


def _health_check(row: Mapping[str, Any], now: datetime) -> HealthCheck:
    shown = state_shown(
        state=row["state"],
        alert_after=row["component__heartbeat__alert_after"],
        now=now,
        message=row["last_message"],
        last_ping_at=row["component__heartbeat__last_ping_at"],
    )
    return HealthCheck(
        row["component__slug"],
        row["component__kind"],
        shown.state,
        HEALTH_STATUS[State(shown.state)],
        row["last_latency_ms"],
        row["last_checked_at"],
        shown.message,
    )


def _worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=_HEALTH_ORDER.index, default="pass")


@dataclass(frozen=True, slots=True)
class ResultsPage:
    """Results newest first, and the cursor of the next (older) page, if any."""

    items: list[HealthResult]
    next_cursor: str | None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def results_page(
    *,
    component: Component,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> ResultsPage:
    """A page of the component's results in ``[since, until)``, after ``cursor``."""
    rows = component.results.order_by("-checked_at", "-id")
    if since is not None:
        rows = rows.filter(checked_at__gte=since)
    if until is not None:
        rows = rows.filter(checked_at__lt=until)
    if cursor:
        at, pk = _cursor_parse(cursor)
        rows = rows.filter(Q(checked_at__lt=at) | Q(checked_at=at, id__lt=pk))
    items = list(rows[: limit + 1])
    more = len(items) > limit
    return ResultsPage(items[:limit], _cursor(items[limit - 1]) if more else None)


def _cursor(result: HealthResult) -> str:
    """Opaque and URL-safe: microseconds since the epoch and the id."""
    micros = (result.checked_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{result.pk}"


def _cursor_parse(cursor: str) -> tuple[datetime, int]:
    try:
        micros, pk = (int(part) for part in cursor.split("_"))
        return _EPOCH + timedelta(microseconds=micros), pk
    except (ValueError, OverflowError) as exc:
        raise ValidationFailed({"cursor": ["Not a cursor from this API."]}) from exc


def state_changes(
    *, component: Component, since: datetime | None = None
) -> QuerySet[StateChange]:
    """The component's state changes (incidents open and close on them), newest first."""
    changes = component.state_changes.all()
    return changes.filter(at__gte=since) if since is not None else changes


class ComponentTile(TypedDict):
    """One component as the dashboard's grid shows it."""

    slug: str
    name: str
    group: str
    state: str
    since: str | None
    latency_ms: float | None
    message: str
    url: str
    latencies: list[float]


class ChangeItem(TypedDict):
    slug: str
    from_state: str
    to_state: str
    at: str
    message: str
    trace_id: str


class ComponentsLive(TypedDict):
    tiles: list[ComponentTile]
    changes: list[ChangeItem]


def components_live(
    *, points: int = 30, window: timedelta = timedelta(hours=1)
) -> ComponentsLive:
    """The dashboard's components snapshot: every enabled component with its state and
    the latencies of its last ``points`` results (within ``window``), plus the newest
    state changes."""
    now = timezone.now()
    components = list(
        Component.objects.filter(enabled=True)
        .select_related("state", "heartbeat")
        .order_by("group", "name")
    )
    recent = (
        HealthResult.objects.filter(checked_at__gte=now - window)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("component_id")],
                order_by=F("checked_at").desc(),
            )
        )
        .filter(rank__lte=points)
        .order_by("checked_at")
        .values_list("component_id", "latency_ms")
    )
    latencies: dict[int, list[float]] = {}
    for component_id, latency in recent:
        latencies.setdefault(component_id, []).append(round(latency, 2))
    changes = StateChange.objects.select_related("component")[:20]
    return ComponentsLive(
        tiles=[_tile(c, latencies.get(c.pk, []), now) for c in components],
        changes=[_change_item(change) for change in changes],
    )


def _tile(component: Component, latencies: list[float], now: datetime) -> ComponentTile:
    state = getattr(component, "state", None)
    shown = component_state_shown(component=component, now=now)
    since = shown.since if shown is not None else None
    return ComponentTile(
        slug=component.slug,
        name=component.name,
        group=component.group,
        state=shown.state if shown is not None else "unknown",
        since=since.isoformat() if since is not None else None,
        latency_ms=state.last_latency_ms if state is not None else None,
        message=shown.message if shown is not None else "",
        url=_admin_change_url(component),
        latencies=latencies,
    )


def _change_item(change: StateChange) -> ChangeItem:
    return ChangeItem(
        slug=change.component.slug,
        from_state=change.from_state,
        to_state=change.to_state,
        at=change.at.isoformat(),
        message=change.message,
        trace_id=change.trace_id,
    )


# Health results have no index on trace_id: look back no further than this.
TRACE_RESULTS_WINDOW = timedelta(days=2)


def component_trace_items(trace_id: str) -> list[TraceItem]:
    """Health results (recent) and state changes carrying ``trace_id``."""
    since = timezone.now() - TRACE_RESULTS_WINDOW
    results = HealthResult.objects.filter(
        trace_id=trace_id, checked_at__gte=since
    ).select_related("component")[:500]
    changes = StateChange.objects.filter(trace_id=trace_id).select_related("component")[
        :500
    ]
    return [
        TraceItem(
            at=result.checked_at,
            kind="check",
            summary=f"{result.component.slug}: {result.status} "
            f"({result.latency_ms:.0f} ms) {result.message}".strip(),
            url=_admin_change_url(result.component),
        )
        for result in results
    ] + [
        TraceItem(
            at=change.at,
            kind="state",
            summary=f"{change.component.slug}: {change.from_state} → {change.to_state}",
            url=_admin_change_url(change.component),
        )
        for change in changes
    ]


def _admin_change_url(component: Component) -> str:
    return reverse("admin:components_component_change", args=[component.pk])
