"""Flag and segment writes. A flag that requires approval is not changed directly:
update, toggle, archive and revert open a change request for it instead.
"""

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import NotFound, PreconditionFailed, ValidationFailed
from apps.core.models import AuditEvent
from apps.core.services import audit_record
from apps.flags import selectors
from apps.flags.models import ChangeRequest, Flag, Segment
from apps.flags.services.approvals import change_request_open
from apps.flags.services.common import (
    check_fields,
    full_clean,
    lock_set,
    locked_flag,
    publish,
    save_flag,
    validate_flag,
    writable_changes,
    write_changes,
)
from apps.flags.specs import (
    FLAG_FIELDS,
    SEGMENT_FIELDS,
    flag_apply,
    flag_spec,
    segment_spec,
)
from apps.flags.validation import validate_segment

# What a change to an existing flag produces: the saved flag, or (when the flag
# requires approval) the change request waiting for another operator.
FlagChange = Flag | ChangeRequest


@transaction.atomic
def flag_create(
    *,
    key: str,
    data: dict[str, Any],
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> Flag:
    """Create a flag from ``data`` (FLAG_FIELDS), validated with the whole set."""
    check_fields(data, FLAG_FIELDS)
    lock_set()
    if Flag.objects.filter(key=key).exists():
        raise ValidationFailed(fields={"key": ["a flag with this key exists"]})
    flag = Flag(key=key)
    flag_apply(flag, data)
    return save_flag(
        flag, None, actor=actor, reason=reason, source=source, action="created"
    )


@transaction.atomic
def flag_update(
    *,
    key: str,
    changes: dict[str, Any],
    expected_version: int | None,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
    action: str = "updated",
) -> FlagChange:
    """Apply ``changes`` (or propose them, if the flag requires approval).

    PreconditionFailed (412) when the flag moved past ``expected_version``.
    """
    changes = writable_changes(key, changes)
    lock_set()
    flag = locked_flag(key, expected_version)
    if flag.requires_approval:
        return change_request_open(
            flag=flag,
            changes=changes,
            action=action,
            actor=actor,
            reason=reason,
            source=source,
        )
    return write_changes(
        flag, changes, actor=actor, reason=reason, source=source, action=action
    )


def flag_toggle(
    *,
    key: str,
    enabled: bool,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
    expected_version: int | None = None,
) -> FlagChange:
    """Switch a flag on or off."""
    return flag_update(
        key=key,
        changes={"enabled": enabled},
        expected_version=expected_version,
        actor=actor,
        reason=reason,
        source=source,
        action="toggled",
    )


def flag_archive(
    *,
    key: str,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
    expected_version: int | None = None,
) -> FlagChange:
    """Archive a flag (switched off; refused while other flags require it)."""
    return flag_update(
        key=key,
        changes={"archived": True, "enabled": False},
        expected_version=expected_version,
        actor=actor,
        reason=reason,
        source=source,
        action="archived",
    )


@transaction.atomic
def flag_revert(
    *,
    key: str,
    version: int,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
    expected_version: int | None = None,
) -> FlagChange:
    """Make a flag as it was at ``version`` again, validated like any change."""
    snapshot = selectors.flag_version_get(key=key, version=version).snapshot
    changes = {field: snapshot[field] for field in FLAG_FIELDS if field in snapshot}
    return flag_update(
        key=key,
        changes=changes,
        expected_version=expected_version,
        actor=actor,
        reason=reason,
        source=source,
        action="reverted",
    )


@transaction.atomic
def flag_upsert(
    *,
    key: str,
    data: dict[str, Any],
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> FlagChange:
    """Create flag ``key`` from ``data``, or change it to ``data`` when it exists."""
    changes = writable_changes(key, data)
    lock_set()
    if not Flag.objects.filter(key=key).exists():
        return flag_create(
            key=key, data=changes, actor=actor, reason=reason, source=source
        )
    return flag_update(
        key=key,
        changes=changes,
        expected_version=None,
        actor=actor,
        reason=reason,
        source=source,
    )


@transaction.atomic
def segment_upsert(
    *,
    key: str,
    data: dict[str, Any],
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> Segment:
    """Create or change a segment (SEGMENT_FIELDS); its conditions are validated."""
    check_fields(data, SEGMENT_FIELDS)
    lock_set()
    segment = Segment.objects.select_for_update().filter(key=key).first()
    before = segment_spec(segment) if segment else None
    segment = segment or Segment(key=key)
    for field, value in data.items():
        setattr(segment, field, value)
    validate_segment(segment_spec(segment))
    segment.updated_at = timezone.now()
    full_clean(segment)
    segment.save()
    after = segment_spec(segment)
    audit_record(
        actor=actor,
        action="segment.updated" if before else "segment.created",
        source=source,
        target=segment,
        before=before,
        after=after,
        reason=reason,
    )
    transaction.on_commit(lambda: publish("segment", key, after))
    return segment


def flag_validate(
    *,
    key: str,
    data: dict[str, Any],
    reason: str,
    creating: bool,
    expected_version: int | None = None,
) -> None:
    """Raise ValidationFailed with every error creating or changing ``key`` would cause.

    Writes nothing and takes no lock: forms call it to show errors early; the write
    itself validates again under the lock.
    """
    check_fields(data, FLAG_FIELDS)
    existing = Flag.objects.filter(key=key).first()
    if creating and existing is not None:
        raise ValidationFailed(fields={"key": ["a flag with this key exists"]})
    if not creating and existing is None:
        raise NotFound(f"no flag {key!r}", extra={"key": key})
    if existing and expected_version not in (None, existing.version):
        raise PreconditionFailed(
            f"flag {key!r} is at version {existing.version}, not {expected_version}",
            extra={"key": key, "version": existing.version},
        )
    before = flag_spec(existing) if existing else None
    flag = existing or Flag(key=key)
    flag_apply(flag, data)
    validate_flag(flag, before, reason=reason)
