"""Four-eyes changes: a flag that requires approval changes only through a request
that an operator other than its author approves; applying it validates again
against the flag set as it is then, in the same transaction as the write.
"""

from typing import Any

import structlog
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import (
    Conflict,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from apps.core.models import AuditEvent
from apps.core.services import audit_record
from apps.flags.models import (
    PENDING_CHANGE,
    ChangeApproval,
    ChangeRequest,
    ChangeStatus,
    Flag,
)
from apps.flags.services.common import (
    full_clean,
    json_safe,
    lock_set,
    locked_flag,
    validate_changes,
    writable_changes,
    write_changes,
)

log = structlog.get_logger(__name__)

# Approvals a revision needs before it can be applied (each from someone not its author).
APPROVALS_NEEDED = 1


def change_request_open(
    *,
    flag: Flag,
    changes: dict[str, Any],
    action: str,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> ChangeRequest:
    """Propose ``changes`` to the locked ``flag`` (validated now, and again on apply)."""
    validate_changes(flag, changes, reason=reason)
    request = ChangeRequest(
        flag=flag,
        action=action,
        changes=json_safe(changes),
        author=actor,
        reason=reason,
    )
    full_clean(request)
    request.save()
    _audit(request, "opened", actor=actor, source=source, reason=reason)
    return request


@transaction.atomic
def change_request_create(
    *,
    key: str,
    changes: dict[str, Any],
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> ChangeRequest:
    """Propose ``changes`` to any flag for approval, whether or not it requires one."""
    changes = writable_changes(key, changes)
    lock_set()
    return change_request_open(
        flag=locked_flag(key, None),
        changes=changes,
        action="updated",
        actor=actor,
        reason=reason,
        source=source,
    )


@transaction.atomic
def change_request_update(
    *,
    key: str,
    request_id: int,
    changes: dict[str, Any],
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> ChangeRequest:
    """Replace what a pending request proposes; earlier approvals no longer count."""
    lock_set()
    request = _pending(key, request_id)
    changes = writable_changes(request.flag.key, changes)
    validate_changes(request.flag, changes, reason=reason)
    request.changes, request.reason = json_safe(changes), reason
    request.revised_by = actor
    request.revision += 1
    request.status = ChangeStatus.OPEN
    _save(request)
    _audit(request, "edited", actor=actor, source=source, reason=reason)
    return request


@transaction.atomic
def change_request_approve(
    *, key: str, request_id: int, actor: User, source: AuditEvent.Source
) -> ChangeRequest:
    """Approve the request's current revision; its author, or whoever wrote that
    revision, never can (403)."""
    request = _pending(key, request_id)
    if actor.pk in (request.author_id, request.revised_by_id):
        raise PermissionDenied(
            "the author of a change request, or of its current revision, cannot approve it",
            code="own_change_request",
            extra={"change_request": request.pk},
        )
    ChangeApproval.objects.get_or_create(
        change_request=request, approver=actor, revision=request.revision
    )
    if _approvals(request) >= APPROVALS_NEEDED:
        request.status = ChangeStatus.APPROVED
    _save(request)
    _audit(request, "approved", actor=actor, source=source)
    return request


@transaction.atomic
def change_request_reject(
    *, key: str, request_id: int, actor: User, reason: str, source: AuditEvent.Source
) -> ChangeRequest:
    """Refuse a pending request, saying why."""
    return _close(
        key,
        request_id,
        ChangeStatus.REJECTED,
        actor=actor,
        reason=reason,
        source=source,
    )


@transaction.atomic
def change_request_cancel(
    *,
    key: str,
    request_id: int,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> ChangeRequest:
    """Withdraw a pending request."""
    return _close(
        key,
        request_id,
        ChangeStatus.CANCELLED,
        actor=actor,
        reason=reason,
        source=source,
    )


@transaction.atomic
def change_request_apply(
    *, key: str, request_id: int, actor: User | None, source: AuditEvent.Source
) -> Flag:
    """Write an approved request to its flag, validated against the set as it is now.

    ValidationFailed (422) leaves everything as it was, the request included.
    """
    lock_set()
    request = _locked(key, request_id)
    if (
        request.status != ChangeStatus.APPROVED
        or _approvals(request) < APPROVALS_NEEDED
    ):
        raise Conflict(
            f"change request #{request.pk} is {request.status}: only an approved "
            "request can be applied",
            extra={"change_request": request.pk, "status": request.status},
        )
    flag = Flag.objects.select_for_update().get(pk=request.flag_id)
    flag = write_changes(
        flag,
        request.changes,
        actor=actor,
        reason=request.reason,
        source=source,
        action=request.action,
    )
    request.status, request.applied_version = ChangeStatus.APPLIED, flag.version
    request.decided_by = actor
    _save(request)
    _audit(request, "applied", actor=actor, source=source, reason=request.reason)
    return flag


def _locked(key: str, request_id: int) -> ChangeRequest:
    request = (
        ChangeRequest.objects.select_for_update()
        .select_related("flag")
        .filter(pk=request_id, flag__key=key)
        .first()
    )
    if request is None:
        raise NotFound(f"no change request #{request_id}")
    return request


def _pending(key: str, request_id: int) -> ChangeRequest:
    request = _locked(key, request_id)
    if request.status not in PENDING_CHANGE:
        raise Conflict(
            f"change request #{request.pk} is {request.status} already",
            extra={"change_request": request.pk, "status": request.status},
        )
    return request


def _approvals(request: ChangeRequest) -> int:
    return request.approvals.filter(revision=request.revision).count()


def _close(
    key: str,
    request_id: int,
    status: ChangeStatus,
    *,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> ChangeRequest:
    if not reason.strip():
        raise ValidationFailed(fields={"reason": ["say why"]})
    request = _pending(key, request_id)
    request.status, request.decided_by = status, actor
    request.decision_reason = reason
    _save(request)
    _audit(request, status, actor=actor, source=source, reason=reason)
    return request


def _save(request: ChangeRequest) -> None:
    request.updated_at = timezone.now()
    full_clean(request)
    request.save()


def _audit(
    request: ChangeRequest,
    event: str,
    *,
    actor: User | None,
    source: AuditEvent.Source,
    reason: str = "",
) -> None:
    state = {
        "flag": request.flag.key,
        "action": request.action,
        "changes": request.changes,
        "revision": request.revision,
        "status": request.status,
    }
    audit_record(
        actor=actor,
        action=f"flag.change_request_{event}",
        source=source,
        target=request,
        after=state,
        reason=reason,
    )
    log.info(
        "flags.change_request_recorded",
        step=event,
        change_request=request.pk,
        flag=request.flag.key,
    )
