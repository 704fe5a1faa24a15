"""Healing REST endpoints under /api/v1/healing: policies, attempts, operators' acts."""

from typing import Literal

from django.http import HttpRequest
from ninja import Router

from apps.core.auth import require_perm, require_scope
from apps.core.models import AuditEvent, Scope
from apps.healing.schemas import AttemptOut, PolicyIn, PolicyOut, ReasonIn
from apps.healing.selectors import attempt_list, policy_list
from apps.healing.services import (
    healing_cancel,
    healing_heal_now,
    healing_set_paused,
    policy_save,
)

router = Router(tags=["healing"])
API = AuditEvent.Source.API
VIEW = "healing.view_healingpolicy"
CHANGE = "healing.change_healingpolicy"


@router.get("/policies", response=list[PolicyOut])
def policies_list(request: HttpRequest) -> list[PolicyOut]:
    """Every healing policy and where its episode stands (secrets masked)."""
    require_scope(request, Scope.READ)
    require_perm(request, VIEW)
    return [PolicyOut.build(policy) for policy in policy_list()]


@router.put("/policies/{slug}", response=PolicyOut)
def policies_put(request: HttpRequest, slug: str, payload: PolicyIn) -> PolicyOut:
    """Create or replace component ``slug``'s healing policy (validated, audited)."""
    principal = require_scope(request, Scope.WRITE)
    require_perm(request, CHANGE)
    data = payload.dict(exclude={"reason"})
    policy = policy_save(
        slug=slug, data=data, actor=principal.user, source=API, reason=payload.reason
    )
    return PolicyOut.build(policy)


@router.get("/attempts", response=list[AttemptOut])
def attempts_list(
    request: HttpRequest, component: str | None = None, limit: int = 100
) -> list[AttemptOut]:
    """Healing attempts newest first, of one component when given."""
    require_scope(request, Scope.READ)
    require_perm(request, "healing.view_healingattempt")
    rows = attempt_list(slug=component)[: max(1, min(limit, 500))]
    return [AttemptOut.build(attempt) for attempt in rows]


@router.post("/policies/{slug}/heal", response=PolicyOut)
def policies_heal(request: HttpRequest, slug: str, payload: ReasonIn) -> PolicyOut:
    """Heal now: a fresh episode whose first attempt runs at once (audited)."""
    principal = require_scope(request, Scope.WRITE)
    require_perm(request, CHANGE)
    policy = healing_heal_now(
        slug=slug, reason=payload.reason, actor=principal.user, source=API
    )
    return PolicyOut.build(policy)


@router.post("/policies/{slug}/{act}", response=PolicyOut)
def policies_act(
    request: HttpRequest,
    slug: str,
    act: Literal["pause", "resume", "cancel"],
    payload: ReasonIn,
) -> PolicyOut:
    """Pause or resume the component's healing, or cancel its episode (audited)."""
    principal = require_scope(request, Scope.WRITE)
    require_perm(request, CHANGE)
    user, reason = principal.user, payload.reason
    if act == "cancel":
        policy = healing_cancel(slug=slug, actor=user, source=API, reason=reason)
    else:
        policy = healing_set_paused(
            slug=slug, paused=act == "pause", actor=user, source=API, reason=reason
        )
    return PolicyOut.build(policy)
