"""Moving a flag set between installations: import a document ``flags export`` wrote.

An import creates or changes every flag and segment the document holds (nothing is
deleted) after validating the resulting set as a whole, exactly as single writes
are; with ``dry_run`` it only says what would change. A flag that requires
approval is never changed by an import: that needs a change request.
"""

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import ValidationFailed
from apps.core.models import AuditEvent
from apps.core.services import audit_record
from apps.flags.models import Flag, Segment
from apps.flags.selectors import FieldChange
from apps.flags.services.common import lock_set, persist_flag, publish_many
from apps.flags.specs import (
    DOCUMENT_KIND,
    DOCUMENT_VERSION,
    FLAG_FIELDS,
    SEGMENT_FIELDS,
    flag_apply,
    flag_spec,
    segment_spec,
)
from apps.flags.validation import validate_flag_set, validate_segment

_TOP_LEVEL = {"kind", "version", "flags", "segments"}


@dataclass(frozen=True, slots=True)
class SetChange:
    """What an import does to one flag or segment: create, update or nothing."""

    kind: str
    key: str
    action: str
    fields: tuple[FieldChange, ...]


@dataclass(slots=True)
class _Planned:
    change: SetChange
    row: Flag | Segment
    before: dict[str, Any] | None


@transaction.atomic
def flag_set_import(
    *,
    document: Any,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
    dry_run: bool,
) -> list[SetChange]:
    """Create or change the document's flags and segments, validated as one set."""
    flags_in, segments_in = _parse(document)
    lock_set()
    flags = {flag.key: flag for flag in Flag.objects.select_for_update()}
    segments = {segment.key: segment for segment in Segment.objects.all()}
    planned = [_plan_segment(data, segments.get(data["key"])) for data in segments_in]
    planned += [_plan_flag(data, flags.get(data["key"])) for data in flags_in]
    _validate(planned, flags, segments, reason=reason)
    if not dry_run:
        _write(planned, actor=actor, reason=reason, source=source)
    return [plan.change for plan in planned]


def _parse(document: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not isinstance(document, Mapping):
        raise ValidationFailed(fields={"document": ["must be a JSON object"]})
    errors: dict[str, list[str]] = {}
    for name in sorted(set(document) - _TOP_LEVEL):
        errors[name] = ["unknown field"]
    if document.get("kind", DOCUMENT_KIND) != DOCUMENT_KIND:
        errors["kind"] = [f"must be {DOCUMENT_KIND!r}"]
    if document.get("version", DOCUMENT_VERSION) != DOCUMENT_VERSION:
        errors["version"] = [f"must be {DOCUMENT_VERSION}"]
    flags = _entries(document, "flags", FLAG_FIELDS, errors)
    segments = _entries(document, "segments", SEGMENT_FIELDS, errors)
    if errors:
        raise ValidationFailed(fields=errors)
    return flags, segments


def _entries(
    document: Mapping[str, Any],
    name: str,
    allowed: tuple[str, ...],
    errors: dict[str, list[str]],
) -> list[dict[str, Any]]:
    entries = document.get(name, [])
    if not isinstance(entries, list):
        errors[name] = ["must be a list"]
        return []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        key = entry.get("key") if isinstance(entry, Mapping) else None
        if not isinstance(key, str) or not key:
            errors[f"{name}.{i}"] = ["must be an object with a key"]
            continue
        if key in seen:
            errors[f"{name}.{key}"] = ["listed twice"]
        seen.add(key)
        for field in sorted(set(entry) - {"key", *allowed}):
            errors[f"{name}.{key}.{field}"] = ["unknown field"]
    return entries if not errors else []


def _plan_flag(data: dict[str, Any], current: Flag | None) -> _Planned:
    before = flag_spec(current) if current else None
    proposed = copy.copy(current) if current else Flag(key=data["key"])
    flag_apply(proposed, {k: v for k, v in data.items() if k != "key"})
    return _Planned(_change("flag", before, flag_spec(proposed)), proposed, before)


def _plan_segment(data: dict[str, Any], current: Segment | None) -> _Planned:
    before = segment_spec(current) if current else None
    proposed = copy.copy(current) if current else Segment(key=data["key"])
    for field in SEGMENT_FIELDS:
        if field in data:
            setattr(proposed, field, data[field])
    return _Planned(
        _change("segment", before, segment_spec(proposed)), proposed, before
    )


def _change(
    kind: str, before: dict[str, Any] | None, after: dict[str, Any]
) -> SetChange:
    fields = FLAG_FIELDS if kind == "flag" else SEGMENT_FIELDS
    old = before or {}
    diff = tuple(
        FieldChange(name, old.get(name), after[name])
        for name in fields
        if before is None or old[name] != after[name]
    )
    action = "create" if before is None else ("update" if diff else "unchanged")
    return SetChange(kind, after["key"], action, diff if before else ())


def _validate(
    planned: list[_Planned],
    flags: Mapping[str, Flag],
    segments: Mapping[str, Segment],
    *,
    reason: str,
) -> None:
    """Every error of the resulting set at once, each as ``<flags|segments>.<key>.<path>``."""
    errors: dict[str, list[str]] = {}
    changed = [plan for plan in planned if plan.change.action != "unchanged"]
    for plan in changed:
        _row_errors(plan, errors)
    segment_specs = {key: segment_spec(segment) for key, segment in segments.items()}
    flag_specs = {key: flag_spec(flag) for key, flag in flags.items()}
    for plan in changed:
        if isinstance(plan.row, Segment):
            segment_specs[plan.change.key] = spec = segment_spec(plan.row)
            with _collected(f"segments.{plan.change.key}.", errors):
                validate_segment(spec)
        else:
            flag_specs[plan.change.key] = flag_spec(plan.row)
    changed_flags = [p.change.key for p in changed if isinstance(p.row, Flag)]
    if changed_flags:
        # One changed flag gets no "<key>." prefix from validate_flag_set: add it.
        prefix = f"flags.{changed_flags[0]}." if len(changed_flags) == 1 else "flags."
        with _collected(prefix, errors):
            validate_flag_set(
                flag_specs.values(),
                segment_specs.values(),
                changed=changed_flags,
                reason=reason,
                before={p.change.key: p.before for p in changed if p.before},
            )
    if errors:
        raise ValidationFailed(fields=errors)


def _row_errors(plan: _Planned, errors: dict[str, list[str]]) -> None:
    where = f"{plan.change.kind}s.{plan.change.key}"
    if isinstance(plan.row, Flag) and plan.before and plan.before["requires_approval"]:
        errors[f"{where}.requires_approval"] = [
            "this flag changes only through an approved change request"
        ]
    try:
        plan.row.full_clean(validate_unique=False)
    except DjangoValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors[f"{where}.{field}"] = list(messages)


@contextmanager
def _collected(prefix: str, errors: dict[str, list[str]]) -> Iterator[None]:
    try:
        yield
    except ValidationFailed as exc:
        for path, messages in exc.fields.items():
            errors.setdefault(f"{prefix}{path}", []).extend(messages)


def _write(
    planned: list[_Planned],
    *,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> None:
    published: list[tuple[str, str, dict[str, Any]]] = []
    for plan in planned:
        if plan.change.action == "unchanged":
            continue
        if isinstance(plan.row, Flag):
            after = persist_flag(
                plan.row,
                plan.before,
                actor=actor,
                reason=reason,
                source=source,
                action="imported",
            )
        else:
            after = _save_segment(plan.row, plan.before, actor, reason, source)
        published.append((plan.change.kind, plan.change.key, after))
    transaction.on_commit(lambda: publish_many(published))


def _save_segment(
    segment: Segment,
    before: dict[str, Any] | None,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> dict[str, Any]:
    segment.updated_at = timezone.now()
    segment.save()
    after = segment_spec(segment)
    audit_record(
        actor=actor,
        action="segment.imported",
        source=source,
        target=segment,
        before=before,
        after=after,
        reason=reason,
    )
    return after
