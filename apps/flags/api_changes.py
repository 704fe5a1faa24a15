"""Change requests (four-eyes) and scheduled changes of a flag, under /api/v1/flags/{key}/.

Proposing needs the operator's ``change_flag`` permission; editing, approving,
rejecting, applying and cancelling need ``change_changerequest``. An author
approving their own request gets 403; applying a request the flag set no longer
accepts gets 422 and changes nothing. Scheduled changes are made by beat when due
and can be cancelled until then.
"""

from collections.abc import Callable

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema
from ninja.pagination import paginate
from ninja.responses import Status

from apps.core.models import AuditEvent
from apps.flags.api_common import Pagination, reader, tagged, writer
from apps.flags.models import (
    ChangeRequest,
    ChangeStatus,
    Flag,
    ScheduledChange,
    ScheduleStatus,
)
from apps.flags.schemas import (
    ChangeRequestIn,
    ChangeRequestOut,
    DecisionIn,
    FlagOut,
    ScheduledChangeIn,
    ScheduledChangeOut,
)
from apps.flags.selectors import (
    change_request_get,
    change_request_list,
    flag_get,
    scheduled_change_list,
)
from apps.flags.services import (
    change_request_apply,
    change_request_approve,
    change_request_cancel,
    change_request_create,
    change_request_reject,
    change_request_update,
    scheduled_change_cancel,
    scheduled_change_create,
)

router = Router(tags=["flags"])
API = AuditEvent.Source.API
DECIDE = "flags.change_changerequest"
ONE = "/flags/{key}/change-requests/{request_id}"


class ChangeRequestFilter(Schema):
    status: ChangeStatus | None = None


class ScheduledChangeFilter(Schema):
    status: ScheduleStatus | None = None


@router.get("/flags/{key}/change-requests", response=list[ChangeRequestOut])
@paginate(Pagination)
def change_requests_list(
    request: HttpRequest, key: str, filters: Query[ChangeRequestFilter]
) -> QuerySet[ChangeRequest]:
    """The flag's change requests, newest first."""
    reader(request)
    return change_request_list(key=flag_get(key=key).key, status=filters.status or "")


@router.post("/flags/{key}/change-requests", response={201: ChangeRequestOut})
def change_requests_create(
    request: HttpRequest, key: str, payload: ChangeRequestIn
) -> Status[ChangeRequest]:
    """Propose a change for approval (validated now, and again when applied)."""
    change = change_request_create(
        key=key,
        changes=payload.changes,
        actor=writer(request).user,
        reason=payload.reason,
        source=API,
    )
    return Status(201, change)


@router.get(ONE, response=ChangeRequestOut)
def change_requests_get(
    request: HttpRequest, key: str, request_id: int
) -> ChangeRequest:
    """One change request with its current approvers."""
    reader(request)
    return change_request_get(key=key, request_id=request_id)


@router.patch(ONE, response=ChangeRequestOut)
def change_requests_edit(
    request: HttpRequest, key: str, request_id: int, payload: ChangeRequestIn
) -> ChangeRequest:
    """Replace what the request proposes; approvals given so far no longer count."""
    return change_request_update(
        key=key,
        request_id=request_id,
        changes=payload.changes,
        actor=writer(request, DECIDE).user,
        reason=payload.reason,
        source=API,
    )


@router.post(f"{ONE}/approve", response=ChangeRequestOut)
def change_requests_approve(
    request: HttpRequest, key: str, request_id: int
) -> ChangeRequest:
    """Approve; the request's author gets 403."""
    actor = writer(request, DECIDE).user
    return change_request_approve(
        key=key, request_id=request_id, actor=actor, source=API
    )


@router.post(f"{ONE}/reject", response=ChangeRequestOut)
def change_requests_reject(
    request: HttpRequest, key: str, request_id: int, payload: DecisionIn
) -> ChangeRequest:
    """Refuse, with a reason."""
    return _decide(change_request_reject, request, key, request_id, payload)


@router.post(f"{ONE}/cancel", response=ChangeRequestOut)
def change_requests_cancel(
    request: HttpRequest, key: str, request_id: int, payload: DecisionIn
) -> ChangeRequest:
    """Withdraw, with a reason."""
    return _decide(change_request_cancel, request, key, request_id, payload)


def _decide(
    service: Callable[..., ChangeRequest],
    request: HttpRequest,
    key: str,
    request_id: int,
    payload: DecisionIn,
) -> ChangeRequest:
    """A reasoned decision on one change request, by the caller (who may decide)."""
    return service(
        key=key,
        request_id=request_id,
        actor=writer(request, DECIDE).user,
        reason=payload.reason,
        source=API,
    )


@router.post(f"{ONE}/apply", response=FlagOut, by_alias=True)
def change_requests_apply(
    request: HttpRequest, key: str, request_id: int, response: HttpResponse
) -> Flag:
    """Write an approved request; 422 (nothing saved) if the set no longer allows it."""
    actor = writer(request, DECIDE).user
    flag = change_request_apply(key=key, request_id=request_id, actor=actor, source=API)
    return tagged(response, flag)


@router.get("/flags/{key}/scheduled-changes", response=list[ScheduledChangeOut])
@paginate(Pagination)
def scheduled_changes_list(
    request: HttpRequest, key: str, filters: Query[ScheduledChangeFilter]
) -> QuerySet[ScheduledChange]:
    """The flag's scheduled changes by when they run."""
    reader(request)
    key = flag_get(key=key).key
    return scheduled_change_list(key=key, status=filters.status or "")


@router.post("/flags/{key}/scheduled-changes", response={201: ScheduledChangeOut})
def scheduled_changes_create(
    request: HttpRequest, key: str, payload: ScheduledChangeIn
) -> Status[ScheduledChange]:
    """Make ``changes`` at ``run_at`` (validated then, against the set as it is)."""
    scheduled = scheduled_change_create(
        key=key,
        changes=payload.changes,
        run_at=payload.run_at,
        actor=writer(request, "flags.add_scheduledchange").user,
        reason=payload.reason,
        source=API,
    )
    return Status(201, scheduled)


@router.post(
    "/flags/{key}/scheduled-changes/{change_id}/cancel", response=ScheduledChangeOut
)
def scheduled_changes_cancel(
    request: HttpRequest, key: str, change_id: int, payload: DecisionIn
) -> ScheduledChange:
    """Drop a pending scheduled change, with a reason (409 once it ran)."""
    return scheduled_change_cancel(
        key=key,
        change_id=change_id,
        actor=writer(request, "flags.change_scheduledchange").user,
        reason=payload.reason,
        source=API,
    )
