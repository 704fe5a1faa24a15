"""Core REST endpoints under /api/v1/: who am I, API tokens, the audit log, self-test."""

from uuid import UUID

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Field, Path, Query, Router, Schema
from ninja.pagination import LimitOffsetPagination, paginate
from ninja.responses import Status

from apps.core.auth import principal_of, require_perm, require_scope
from apps.core.models import ApiToken, AuditEvent, Scope
from apps.core.roles import user_roles
from apps.core.schemas import (
    AuditFilter,
    AuditOut,
    MeOut,
    SelftestOut,
    SelftestStartedOut,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
    TraceItemOut,
)
from apps.core.selectors import (
    SelftestStatus,
    audit_list,
    selftest_get,
    token_get,
    token_list,
)
from apps.core.services import selftest_request, token_create, token_revoke
from apps.core.trace_index import TRACE_ID_PATTERN, TraceItem, trace_items

router = Router(tags=["console"])


class AuditPagination(LimitOffsetPagination):
    class Input(Schema):
        limit: int = Field(50, ge=1, le=200)
        offset: int = Field(0, ge=0)


@router.get("/me", response=MeOut)
def me(request: HttpRequest) -> MeOut:
    """Who is calling: username, roles, the scopes in force and the token used."""
    principal = principal_of(request)
    return MeOut(
        username=principal.user.get_username(),
        roles=user_roles(principal.user),
        scopes=sorted(principal.scopes),
        token_prefix=principal.token.prefix if principal.token else None,
    )


@router.get("/tokens", response=list[TokenOut])
def tokens_list(request: HttpRequest) -> list[ApiToken]:
    """Your tokens; with the ``admin`` scope, everyone's."""
    principal = require_scope(request, Scope.READ)
    everyone = Scope.ADMIN in principal.scopes
    return list(token_list(user=None if everyone else principal.user))


@router.post("/tokens", response={201: TokenCreatedOut})
def tokens_create(request: HttpRequest, payload: TokenIn) -> Status[TokenCreatedOut]:
    """Create a token for yourself; the response holds its secret, shown only once."""
    principal = require_scope(request, Scope.WRITE)
    require_perm(request, "core.add_apitoken")
    token, raw = token_create(
        user=principal.user,
        name=payload.name,
        scopes=[str(scope) for scope in payload.scopes],
        expires_at=payload.expires_at,
        actor=principal.user,
        source=AuditEvent.Source.API,
        ceiling=principal.scopes,
    )
    return Status(201, TokenCreatedOut.build(token, raw))


@router.delete("/tokens/{prefix}", response=TokenOut)
def tokens_revoke(request: HttpRequest, prefix: str, reason: str = "") -> ApiToken:
    """Revoke one of your tokens; with the ``admin`` scope, anyone's."""
    principal = require_scope(request, Scope.WRITE)
    require_perm(request, "core.change_apitoken")
    everyone = Scope.ADMIN in principal.scopes
    token = token_get(prefix=prefix, user=None if everyone else principal.user)
    return token_revoke(
        token=token, actor=principal.user, source=AuditEvent.Source.API, reason=reason
    )


@router.get("/audit", response=list[AuditOut])
@paginate(AuditPagination)
def audit(request: HttpRequest, filters: Query[AuditFilter]) -> QuerySet[AuditEvent]:
    """The audit log, newest first."""
    require_scope(request, Scope.READ)
    require_perm(request, "core.view_auditevent")
    return audit_list(
        action=filters.action, target_type=filters.target_type, since=filters.since
    )


@router.post("/system/selftest", response={202: SelftestStartedOut})
def selftest_start(request: HttpRequest) -> Status[SelftestStartedOut]:
    """Send a task through the broker to a worker that writes to the database."""
    principal = require_scope(request, Scope.WRITE)
    require_perm(request, "core.run_selftest")
    task_id = selftest_request(actor=principal.user, source=AuditEvent.Source.API)
    url = request.build_absolute_uri(f"{request.path}/{task_id}")
    return Status(202, SelftestStartedOut(task_id=task_id, status_url=url))


@router.get("/system/selftest/{task_id}", response=SelftestOut)
def selftest_status(request: HttpRequest, task_id: UUID) -> SelftestStatus:
    """Where a self-test stands; ``pending`` until a worker has run it."""
    require_scope(request, Scope.READ)
    require_perm(request, "core.view_console")
    return selftest_get(task_id=str(task_id))


@router.get("/traces/{trace_id}", response=list[TraceItemOut])
def trace_get(
    request: HttpRequest, trace_id: str = Path(..., pattern=TRACE_ID_PATTERN)
) -> list[TraceItem]:
    """Every record carrying the trace id, oldest first: what one action caused."""
    require_scope(request, Scope.READ)
    require_perm(request, "core.view_console")
    return trace_items(trace_id=trace_id)
