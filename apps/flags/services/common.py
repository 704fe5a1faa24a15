"""What every flag write shares: the set lock, whole-set validation, save + history + audit.

Each write locks the flag set, builds the resulting whole set, validates it, saves,
records a FlagVersion and an AuditEvent in one transaction, and on commit tells every
process to rebuild its snapshot and publishes the change live.
"""

import copy
import json
from typing import Any

import structlog
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from apps import live
from apps.core.exceptions import NotFound, PreconditionFailed, ValidationFailed
from apps.core.models import AuditEvent
from apps.core.services import audit_record
from apps.flags import selectors
from apps.flags.models import Flag, FlagVersion
from apps.flags.snapshot import flags_changed
from apps.flags.specs import FLAG_FIELDS, flag_apply, flag_spec
from apps.flags.validation import validate_flag_set

log = structlog.get_logger(__name__)

# Serialises flag-set writes: whole-set rules (conflicts, requirements) span rows.
_SET_LOCK = 0x666C6167


def lock_set() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SET_LOCK])


def check_fields(data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationFailed(fields={field: ["unknown field"] for field in unknown})


def writable_changes(key: str, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` without an unchanged ``key``; unknown fields and a new key refused."""
    if "key" in changes and changes["key"] != key:
        raise ValidationFailed(fields={"key": ["a flag's key never changes"]})
    changes = {field: value for field, value in changes.items() if field != "key"}
    check_fields(changes, FLAG_FIELDS)
    return changes


def json_safe(changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` as stored JSON (datetimes as ISO 8601), for changes kept for later."""
    loaded: dict[str, Any] = json.loads(json.dumps(changes, cls=DjangoJSONEncoder))
    return loaded


def locked_flag(key: str, expected_version: int | None) -> Flag:
    """The flag row, locked; 404 when missing, 412 when past ``expected_version``."""
    flag = Flag.objects.select_for_update().filter(key=key).first()
    if flag is None:
        raise NotFound(f"no flag {key!r}", extra={"key": key})
    if expected_version is not None and flag.version != expected_version:
        raise PreconditionFailed(
            f"flag {key!r} is at version {flag.version}, not {expected_version}",
            extra={"key": key, "version": flag.version},
        )
    return flag


def validate_changes(flag: Flag, changes: dict[str, Any], *, reason: str) -> None:
    """Raise ValidationFailed if ``changes`` on ``flag`` would break the set; no write."""
    proposed = copy.copy(flag)
    flag_apply(proposed, changes)
    validate_flag(proposed, flag_spec(flag), reason=reason)


def write_changes(
    flag: Flag,
    changes: dict[str, Any],
    *,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
    action: str,
) -> Flag:
    """Put ``changes`` on the locked ``flag`` and save it (validated, versioned, audited)."""
    before = flag_spec(flag)
    flag_apply(flag, changes)
    return save_flag(
        flag, before, actor=actor, reason=reason, source=source, action=action
    )


def save_flag(
    flag: Flag,
    before: dict[str, Any] | None,
    *,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
    action: str,
) -> Flag:
    validate_flag(flag, before, reason=reason)
    full_clean(flag)
    after = persist_flag(
        flag, before, actor=actor, reason=reason, source=source, action=action
    )
    transaction.on_commit(lambda: publish("flag", flag.key, after))
    return flag


def persist_flag(
    flag: Flag,
    before: dict[str, Any] | None,
    *,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
    action: str,
) -> dict[str, Any]:
    """Save an already validated ``flag`` with its FlagVersion and AuditEvent; its spec."""
    flag.version = flag.version + 1 if before else 1
    flag.updated_at = timezone.now()
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
    return after


def validate_flag(flag: Flag, before: dict[str, Any] | None, *, reason: str) -> None:
    proposed = flag_spec(flag)
    others = [spec for spec in selectors.flag_specs_all() if spec["key"] != flag.key]
    validate_flag_set(
        [*others, proposed],
        selectors.segment_specs_all(),
        changed=[flag.key],
        reason=reason,
        before={flag.key: before} if before else None,
    )


def full_clean(instance: models.Model) -> None:
    try:
        instance.full_clean(validate_unique=False)
    except DjangoValidationError as exc:
        raise ValidationFailed(fields=exc.message_dict) from exc


def publish(kind: str, key: str, spec: dict[str, Any]) -> None:
    publish_many([(kind, key, spec)])


def publish_many(changes: list[tuple[str, str, dict[str, Any]]]) -> None:
    """After commit: one snapshot rebuild for all ``(kind, key, spec)``, each live."""
    flags_changed()
    for kind, key, spec in changes:
        live.publish("flags", {"kind": kind, "spec": spec}, key=key)
        log.info("flags.published", kind=kind, key=key)
