"""Scheduled changes ("switch on at 02:00"): kept until due, then made by beat
through ``flag_update`` like any other change (validated against the set as it is
then, versioned, audited; a flag that requires approval gets a change request).
"""

from datetime import datetime
from typing import Any

import structlog
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import Conflict, NotFound, OpsError, ValidationFailed
from apps.core.models import AuditEvent
from apps.core.services import audit_record
from apps.flags.models import ChangeRequest, ScheduledChange, ScheduleStatus
from apps.flags.services.common import (
    full_clean,
    json_safe,
    locked_flag,
    writable_changes,
)
from apps.flags.services.flags import FlagChange, flag_update

log = structlog.get_logger(__name__)


@transaction.atomic
def scheduled_change_create(
    *,
    key: str,
    changes: dict[str, Any],
    run_at: datetime,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> ScheduledChange:
    """Keep ``changes`` to make at ``run_at``; they are validated when they run."""
    changes = writable_changes(key, changes)
    if not changes:
        raise ValidationFailed(fields={"changes": ["say what to change"]})
    action = "toggled" if set(changes) == {"enabled"} else "updated"
    scheduled = ScheduledChange(
        flag=locked_flag(key, None),
        action=action,
        changes=json_safe(changes),
        run_at=run_at,
        author=actor,
        reason=reason,
    )
    full_clean(scheduled)
    scheduled.save()
    _audit(scheduled, "scheduled", actor=actor, source=source, reason=reason)
    return scheduled


@transaction.atomic
def scheduled_change_cancel(
    *,
    key: str,
    change_id: int,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> ScheduledChange:
    """Drop a pending scheduled change (409 once it ran)."""
    scheduled = (
        ScheduledChange.objects.select_for_update()
        .select_related("flag")
        .filter(pk=change_id, flag__key=key)
        .first()
    )
    if scheduled is None:
        raise NotFound(f"no scheduled change #{change_id} of {key!r}")
    if scheduled.status != ScheduleStatus.PENDING:
        raise Conflict(f"scheduled change #{change_id} is {scheduled.status} already")
    _finish(scheduled, ScheduleStatus.CANCELLED, reason)
    _audit(scheduled, "schedule_cancelled", actor=actor, source=source, reason=reason)
    return scheduled


def scheduled_changes_apply_due(*, now: datetime) -> int:
    """Make every change due at ``now``, each in its own transaction; how many ran.

    Rows are claimed with SKIP LOCKED, so several workers never make one twice.
    """
    count = 0
    while _apply_next(now):
        count += 1
    return count


@transaction.atomic
def _apply_next(now: datetime) -> bool:
    scheduled = (
        ScheduledChange.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("flag", "author")
        .filter(status=ScheduleStatus.PENDING, run_at__lte=now)
        .order_by("run_at", "pk")
        .first()
    )
    if scheduled is None:
        return False
    try:
        result = flag_update(
            key=scheduled.flag.key,
            changes=scheduled.changes,
            expected_version=None,
            actor=scheduled.author,
            reason=scheduled.reason,
            source=AuditEvent.Source.TASK,
            action=scheduled.action,
        )
    except OpsError as exc:
        _finish(scheduled, ScheduleStatus.FAILED, exc.message)
        log.warning("flags.scheduled_change_failed", scheduled_change=scheduled.pk)
        return True
    _finish(scheduled, ScheduleStatus.DONE, _outcome(result))
    log.info("flags.scheduled_change_applied", scheduled_change=scheduled.pk)
    return True


def _outcome(result: FlagChange) -> str:
    if isinstance(result, ChangeRequest):
        return f"the flag requires approval: opened change request #{result.pk}"
    return f"applied as version {result.version}"


def _finish(scheduled: ScheduledChange, status: ScheduleStatus, outcome: str) -> None:
    scheduled.status, scheduled.outcome = status, outcome
    scheduled.finished_at = timezone.now()
    scheduled.save(update_fields=["status", "outcome", "finished_at"])


def _audit(
    scheduled: ScheduledChange,
    event: str,
    *,
    actor: User | None,
    source: AuditEvent.Source,
    reason: str,
) -> None:
    state = {
        "flag": scheduled.flag.key,
        "changes": scheduled.changes,
        "run_at": scheduled.run_at.isoformat(),
        "status": scheduled.status,
    }
    audit_record(
        actor=actor,
        action=f"flag.{event}",
        source=source,
        target=scheduled,
        after=state,
        reason=reason,
    )
