"""Flags REST endpoints under /api/v1/: flags, their history, segments, evaluation.

Reads need the ``read`` scope; writes the ``write`` scope and the operator's Django
permission. Every flag response carries ``ETag: "<version>"``; a write that sends
``If-Match`` with it fails with 412 when the flag has moved on since. A change to a
flag that requires approval answers 202 with the change request it opened.
"""

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router
from ninja.pagination import paginate
from ninja.responses import Status

import apps.flags
from apps.core.auth import require_perm, require_scope
from apps.core.models import AuditEvent, Scope
from apps.flags.api_changes import router as changes_router
from apps.flags.api_common import (
    Pagination,
    changed,
    if_match,
    reader,
    tagged,
    writer,
)
from apps.flags.engine import Evaluation
from apps.flags.models import ChangeRequest, Flag, FlagVersion, Segment
from apps.flags.schemas import (
    ChangeRequestOut,
    EvaluateIn,
    EvaluationOut,
    FlagCreateIn,
    FlagFields,
    FlagListFilter,
    FlagOut,
    FlagPatchIn,
    FlagVersionOut,
    Reasoned,
    SegmentIn,
    SegmentOut,
    ToggleIn,
    changes_of,
)
from apps.flags.selectors import flag_get, flag_history, flag_list, segment_list
from apps.flags.services import (
    FlagChange,
    flag_archive,
    flag_create,
    flag_revert,
    flag_toggle,
    flag_update,
    segment_upsert,
)

router = Router(tags=["flags"])
router.add_router("/", changes_router)
API = AuditEvent.Source.API
# A change answers with the flag, or with the change request it opened.
CHANGED = {200: FlagOut, 202: ChangeRequestOut}


@router.get("/flags", response=list[FlagOut], by_alias=True)
@paginate(Pagination)
def flags_list(request: HttpRequest, filters: Query[FlagListFilter]) -> QuerySet[Flag]:
    """Flags by key; archived ones only when asked."""
    reader(request)
    return flag_list(include_archived=filters.include_archived, tag=filters.tag)


@router.get("/flags/{key}", response=FlagOut, by_alias=True)
def flags_get(request: HttpRequest, key: str, response: HttpResponse) -> Flag:
    """One flag; its ETag is its version."""
    reader(request)
    return tagged(response, flag_get(key=key))


@router.post("/flags", response={201: FlagOut}, by_alias=True)
def flags_create(
    request: HttpRequest, payload: FlagCreateIn, response: HttpResponse
) -> Status[Flag]:
    """Create a flag, validated with the whole flag set (422 names every field)."""
    principal = writer(request, "flags.add_flag")
    flag = flag_create(
        key=payload.key,
        data=changes_of(payload, partial=False),
        actor=principal.user,
        reason=payload.reason,
        source=API,
    )
    return Status(201, tagged(response, flag))


def _update(
    request: HttpRequest, key: str, payload: Reasoned, *, partial: bool
) -> FlagChange:
    principal = writer(request)
    return flag_update(
        key=key,
        changes=changes_of(payload, partial=partial),
        expected_version=if_match(request),
        actor=principal.user,
        reason=payload.reason,
        source=API,
    )


@router.patch("/flags/{key}", response=CHANGED, by_alias=True)
def flags_patch(
    request: HttpRequest, key: str, payload: FlagPatchIn, response: HttpResponse
) -> Status[Flag | ChangeRequest]:
    """Change the fields sent; ``If-Match`` guards against a stale write (412)."""
    return changed(response, _update(request, key, payload, partial=True))


@router.put("/flags/{key}", response=CHANGED, by_alias=True)
def flags_put(
    request: HttpRequest, key: str, payload: FlagFields, response: HttpResponse
) -> Status[Flag | ChangeRequest]:
    """Replace every writable field; ``If-Match`` guards against a stale write (412)."""
    return changed(response, _update(request, key, payload, partial=False))


@router.post("/flags/{key}/toggle", response=CHANGED, by_alias=True)
def flags_toggle(
    request: HttpRequest, key: str, payload: ToggleIn, response: HttpResponse
) -> Status[Flag | ChangeRequest]:
    """Switch a flag on or off."""
    flag = flag_toggle(
        key=key,
        enabled=payload.enabled,
        actor=writer(request).user,
        reason=payload.reason,
        source=API,
        expected_version=if_match(request),
    )
    return changed(response, flag)


@router.post("/flags/{key}/archive", response=CHANGED, by_alias=True)
def flags_archive(
    request: HttpRequest, key: str, payload: Reasoned, response: HttpResponse
) -> Status[Flag | ChangeRequest]:
    """Archive a flag (switched off; refused while others require it)."""
    flag = flag_archive(
        key=key,
        actor=writer(request).user,
        reason=payload.reason,
        source=API,
        expected_version=if_match(request),
    )
    return changed(response, flag)


@router.get("/flags/{key}/versions", response=list[FlagVersionOut])
@paginate(Pagination)
def flags_versions(request: HttpRequest, key: str) -> QuerySet[FlagVersion]:
    """Every version of a flag, newest first."""
    reader(request)
    return flag_history(key=flag_get(key=key).key)


@router.post("/flags/{key}/versions/{version}/revert", response=CHANGED, by_alias=True)
def flags_revert(
    request: HttpRequest,
    key: str,
    version: int,
    payload: Reasoned,
    response: HttpResponse,
) -> Status[Flag | ChangeRequest]:
    """Make the flag as it was at ``version`` again, as a new version."""
    flag = flag_revert(
        key=key,
        version=version,
        actor=writer(request).user,
        reason=payload.reason,
        source=API,
        expected_version=if_match(request),
    )
    return changed(response, flag)


@router.post("/flags/{key}/evaluate", response=EvaluationOut)
def flags_evaluate(request: HttpRequest, key: str, payload: EvaluateIn) -> Evaluation:
    """Evaluate against this process's snapshot; a missing flag is FLAG_NOT_FOUND."""
    require_scope(request, Scope.READ)
    return apps.flags.evaluate(key, payload.context)


@router.get("/segments", response=list[SegmentOut])
def segments_list(request: HttpRequest) -> QuerySet[Segment]:
    """Every segment by key."""
    require_scope(request, Scope.READ)
    require_perm(request, "flags.view_segment")
    return segment_list()


@router.put("/segments/{key}", response=SegmentOut)
def segments_upsert(request: HttpRequest, key: str, payload: SegmentIn) -> Segment:
    """Create or replace a segment; its conditions are validated (422)."""
    principal = writer(request, "flags.change_segment")
    require_perm(request, "flags.add_segment")
    return segment_upsert(
        key=key,
        data=payload.model_dump(exclude={"reason"}),
        actor=principal.user,
        reason=payload.reason,
        source=API,
    )
