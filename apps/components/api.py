"""Components REST endpoints under /api/v1/components."""

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

from apps.components.models import Component, MaintenanceWindow, StateChange
from apps.components.notifications.api import router as notifications_router
from apps.components.notifications.selectors import channels_named
from apps.components.schemas import (
    CheckRequestedOut,
    ComponentFilter,
    ComponentIn,
    ComponentOut,
    ComponentPatchIn,
    ComponentStatsOut,
    MaintenanceEndedOut,
    MaintenanceIn,
    MaintenanceOut,
    Pagination,
    ReasonIn,
    ResultsFilter,
    ResultsPageOut,
    SinceFilter,
    StateChangeOut,
)
from apps.components.selectors import (
    ResultsPage,
    component_get,
    component_list,
    components_named,
    results_page,
    state_changes,
)
from apps.components.services import (
    component_check_now,
    component_create,
    component_pause,
    component_resume,
    component_update,
    maintenance_end,
    maintenance_window_create,
)
from apps.components.stats import ComponentStats, component_stats
from apps.core.auth import Principal, require_perm, require_scope
from apps.core.models import AuditEvent, Scope

router = Router(tags=["components"])
router.add_router("/notifications", notifications_router)
API = AuditEvent.Source.API


def _reader(request: HttpRequest) -> Principal:
    require_scope(request, Scope.READ)
    return require_perm(request, "components.view_component")


def _operator(request: HttpRequest, perm: str) -> Principal:
    require_scope(request, Scope.WRITE)
    return require_perm(request, perm)


def _listed(slug: str) -> Component:
    """The component with the list's annotations, or NotFound."""
    found = _with_uptime().filter(slug=slug).first()
    return found or component_get(slug=slug)


def _with_uptime() -> QuerySet[Component]:
    return component_list()


@router.get("", response=list[ComponentOut])
@paginate(Pagination)
def components(
    request: HttpRequest, filters: Query[ComponentFilter]
) -> QuerySet[Component]:
    """Components with their current state and 24 h uptime; config secrets masked."""
    _reader(request)
    rows = _with_uptime()
    if filters.group is not None:
        rows = rows.filter(group=filters.group)
    if filters.kind is not None:
        rows = rows.filter(kind=filters.kind)
    if filters.state is not None:
        rows = rows.filter(state__state=filters.state)
    return rows


@router.get("/{slug}", response=ComponentOut)
def component(request: HttpRequest, slug: str) -> Component:
    """One component with its current state."""
    _reader(request)
    return _listed(slug)


def _named(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with depends_on slugs and channel names as the rows they name."""
    if "depends_on" in data:
        data["depends_on"] = components_named(slugs=data["depends_on"])
    if "notification_channels" in data:
        names = data["notification_channels"]
        data["notification_channels"] = channels_named(names=names)
    return data


@router.post("", response={201: ComponentOut})
def create(request: HttpRequest, payload: ComponentIn) -> Status[Component]:
    """Register a component; 422 names the field, e.g. ``config.url``. Secrets in
    the config are stored, and masked in the answer."""
    principal = _operator(request, "components.add_component")
    component_create(**_named(payload.dict()), actor=principal.user, source=API)
    return Status(201, _listed(payload.slug))


@router.patch("/{slug}", response=ComponentOut)
def update(request: HttpRequest, slug: str, payload: ComponentPatchIn) -> Component:
    """Change the fields sent; a secret sent back masked keeps its stored value."""
    principal = _operator(request, "components.change_component")
    data = payload.dict(exclude_unset=True)
    reason = data.pop("reason", "")
    component_update(
        slug=slug, data=_named(data), actor=principal.user, source=API, reason=reason
    )
    return _listed(slug)


@router.get("/{slug}/results", response=ResultsPageOut)
def results(
    request: HttpRequest, slug: str, filters: Query[ResultsFilter]
) -> ResultsPage:
    """Results newest first in ``[since, until)``; follow ``next_cursor`` for older."""
    _reader(request)
    return results_page(component=component_get(slug=slug), **filters.dict())


@router.get("/{slug}/stats", response=ComponentStatsOut)
def stats(request: HttpRequest, slug: str) -> ComponentStats:
    """Uptime and latency p50/p95/p99 over 24 h, 7 d, 30 d and 365 d, and the latest
    incidents with their durations."""
    _reader(request)
    return component_stats(component=component_get(slug=slug), now=timezone.now())


@router.get("/{slug}/incidents", response=list[StateChangeOut])
@paginate(Pagination)
def incidents(
    request: HttpRequest, slug: str, filters: Query[SinceFilter]
) -> QuerySet[StateChange]:
    """State changes newest first: entering unhealthy opens an incident, recovery
    closes it with its duration."""
    _reader(request)
    return state_changes(component=component_get(slug=slug), since=filters.since)


@router.post("/{slug}/check", response={202: CheckRequestedOut})
def check_now(request: HttpRequest, slug: str) -> Status[CheckRequestedOut]:
    """Run the check now, on a worker; 409 while one runs or for a heartbeat."""
    principal = _operator(request, "components.change_component")
    claimed = component_check_now(slug=slug, actor=principal.user, source=API)
    return Status(202, CheckRequestedOut.model_validate(claimed))


@router.post("/{slug}/pause", response=ComponentOut)
def pause(request: HttpRequest, slug: str, payload: ReasonIn) -> Component:
    """Stop checking the component; 409 if it is paused already."""
    principal = _operator(request, "components.change_component")
    component_pause(slug=slug, actor=principal.user, source=API, reason=payload.reason)
    return _listed(slug)


@router.post("/{slug}/resume", response=ComponentOut)
def resume(request: HttpRequest, slug: str, payload: ReasonIn) -> Component:
    """Check the component again, at once; 409 if it is not paused."""
    principal = _operator(request, "components.change_component")
    component_resume(slug=slug, actor=principal.user, source=API, reason=payload.reason)
    return _listed(slug)


@router.post("/{slug}/maintenance", response={201: MaintenanceOut})
def maintenance_create(
    request: HttpRequest, slug: str, payload: MaintenanceIn
) -> Status[MaintenanceWindow]:
    """Schedule maintenance: one-off (``ends_at``) or recurring (``cron`` + duration)."""
    principal = _operator(request, "components.add_maintenancewindow")
    seconds = payload.duration_seconds
    window = maintenance_window_create(
        component=component_get(slug=slug),
        starts_at=payload.starts_at or timezone.now(),
        ends_at=payload.ends_at,
        cron=payload.cron,
        duration=timedelta(seconds=seconds) if seconds else None,
        tz=payload.timezone,
        reason=payload.reason,
        actor=principal.user,
        source=API,
    )
    return Status(201, window)


@router.post("/{slug}/maintenance/end", response=MaintenanceEndedOut)
def maintenance_stop(
    request: HttpRequest, slug: str, payload: ReasonIn
) -> MaintenanceEndedOut:
    """End the one-off maintenance open now; 409 if none is."""
    principal = _operator(request, "components.change_maintenancewindow")
    ended = maintenance_end(
        slug=slug, actor=principal.user, source=API, reason=payload.reason
    )
    return MaintenanceEndedOut(ended=ended)
