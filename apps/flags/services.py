"""Writes of the flags app. Every door (admin, API, CLI, tasks) calls these.

Each write locks the flag set, builds the resulting whole set, validates it, saves,
records a FlagVersion and an AuditEvent in one transaction, and on commit tells every
process to rebuild its snapshot and publishes the change live.
"""

from typing import Any

import structlog
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, models, transaction
from django.utils import timezone

from apps import live
from apps.core.exceptions import NotFound, PreconditionFailed, ValidationFailed
from apps.core.models import AuditEvent
from apps.core.services import audit_record
from apps.flags import selectors
from apps.flags.models import Flag, FlagVersion, Segment
from apps.flags.snapshot import flags_changed
from apps.flags.specs import (
    FLAG_FIELDS,
    SEGMENT_FIELDS,
    flag_apply,
    flag_spec,
    segment_spec,
)
from apps.flags.validation import validate_flag_set, validate_segment

log = structlog.get_logger(__name__)

# Serialises flag-set writes: whole-set rules (conflicts, requirements) span rows.
_SET_LOCK = 0x666C6167


def _lock_set() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SET_LOCK])


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
    _check_fields(data, FLAG_FIELDS)
    _lock_set()
    if Flag.objects.filter(key=key).exists():
        raise ValidationFailed(fields={"key": ["a flag with this key exists"]})
    flag = Flag(key=key)
    flag_apply(flag, data)
    return _save(
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
) -> Flag:
    """Apply ``changes``; PreconditionFailed (412) when the flag moved past ``expected_version``."""
    if "key" in changes and changes["key"] != key:
        raise ValidationFailed(fields={"key": ["a flag's key never changes"]})
    changes = {field: value for field, value in changes.items() if field != "key"}
    _check_fields(changes, FLAG_FIELDS)
    _lock_set()
    flag = Flag.objects.select_for_update().filter(key=key).first()
    if flag is None:
        raise NotFound(f"no flag {key!r}", extra={"key": key})
    if expected_version is not None and flag.version != expected_version:
        raise PreconditionFailed(
            f"flag {key!r} is at version {flag.version}, not {expected_version}",
            extra={"key": key, "version": flag.version},
        )
    before = flag_spec(flag)
    flag_apply(flag, changes)
    return _save(flag, before, actor=actor, reason=reason, source=source, action=action)


def flag_toggle(
    *,
    key: str,
    enabled: bool,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
    expected_version: int | None = None,
) -> Flag:
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
) -> Flag:
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
) -> Flag:
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
def segment_upsert(
    *,
    key: str,
    data: dict[str, Any],
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> Segment:
    """Create or change a segment (SEGMENT_FIELDS); its conditions are validated."""
    _check_fields(data, SEGMENT_FIELDS)
    _lock_set()
    segment = Segment.objects.select_for_update().filter(key=key).first()
    before = segment_spec(segment) if segment else None
    segment = segment or Segment(key=key)
    for field, value in data.items():
        setattr(segment, field, value)
    validate_segment(segment_spec(segment))
    segment.updated_at = timezone.now()
    _full_clean(segment)
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
    transaction.on_commit(lambda: _publish("segment", key, after))
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
    _check_fields(data, FLAG_FIELDS)
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
    _validate(flag, before, reason=reason)


def _check_fields(data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationFailed(fields={field: ["unknown field"] for field in unknown})


def _save(
    flag: Flag,
    before: dict[str, Any] | None,
    *,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
    action: str,
) -> Flag:
    _validate(flag, before, reason=reason)
    now = timezone.now()
    flag.version = flag.version + 1 if before else 1
    flag.updated_at = now
    _full_clean(flag)
    flag.save()
    after = flag_spec(flag)
    FlagVersion.objects.create(
        flag=flag, version=flag.version, snapshot=after, actor=actor, reason=reason
    )
    audit_record(
        actor=actor,
        action=f"flag.{action}",
        source=source,
        target=flag,
        before=before,
        after=after,
        reason=reason,
    )
    transaction.on_commit(lambda: _publish("flag", flag.key, after))
    return flag


def _validate(flag: Flag, before: dict[str, Any] | None, *, reason: str) -> None:
    proposed = flag_spec(flag)
    others = [spec for spec in selectors.flag_specs_all() if spec["key"] != flag.key]
    validate_flag_set(
        [*others, proposed],
        selectors.segment_specs_all(),
        changed=[flag.key],
        reason=reason,
        before={flag.key: before} if before else None,
    )


def _full_clean(instance: models.Model) -> None:
    try:
        instance.full_clean(validate_unique=False)
    except DjangoValidationError as exc:
        raise ValidationFailed(fields=exc.message_dict) from exc


def _publish(kind: str, key: str, spec: dict[str, Any]) -> None:
    flags_changed()
    live.publish("flags", {"kind": kind, "spec": spec}, key=key)
    log.info("flags.published", kind=kind, key=key)
