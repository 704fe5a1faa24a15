"""Breakers REST endpoints under /api/v1/breakers: list, one, operators' actions."""

from typing import Literal

from django.http import HttpRequest
from ninja import Router

from apps.breakers.schemas import (
    BreakerActionIn,
    BreakerDetailOut,
    BreakerEventOut,
    BreakerOut,
)
from apps.breakers.selectors import breaker_events, breaker_statuses
from apps.breakers.services import breaker_act
from apps.core.auth import require_perm, require_scope
from apps.core.models import AuditEvent, Scope

router = Router(tags=["breakers"])
Action = Literal["force-open", "force-close", "reset", "disable"]


@router.get("", response=list[BreakerOut])
def breakers_list(request: HttpRequest) -> list[BreakerOut]:
    """Every breaker with its fleet-wide state, rates and calls in window."""
    require_scope(request, Scope.READ)
    require_perm(request, "breakers.view_breaker")
    return [BreakerOut.build(status) for status in breaker_statuses()]


@router.get("/{name}", response=BreakerDetailOut)
def breakers_get(request: HttpRequest, name: str) -> BreakerDetailOut:
    """One breaker, its config and its newest transitions."""
    require_scope(request, Scope.READ)
    require_perm(request, "breakers.view_breaker")
    (status,) = breaker_statuses(name=name)
    events = [BreakerEventOut.build(event) for event in breaker_events(name=name)]
    return BreakerDetailOut(**BreakerOut.build(status).dict(), events=events)


@router.post("/{name}/{action}", response=BreakerEventOut)
def breakers_act(
    request: HttpRequest, name: str, action: Action, payload: BreakerActionIn
) -> BreakerEventOut:
    """Force-open, force-close, reset or disable a breaker fleet-wide (audited)."""
    principal = require_scope(request, Scope.WRITE)
    require_perm(request, "breakers.change_breaker")
    event = breaker_act(
        name=name,
        action=action.replace("-", "_"),
        actor=principal.user,
        reason=payload.reason,
        source=AuditEvent.Source.API,
    )
    return BreakerEventOut.build(event)
