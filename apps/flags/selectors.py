"""Reads of the flags app."""

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from django.db.models import (
    Count,
    F,
    Func,
    Max,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from apps.core.exceptions import NotFound
from apps.flags.models import (
    ChangeRequest,
    Flag,
    FlagUsage,
    FlagVersion,
    ScheduledChange,
    Segment,
)
from apps.flags.specs import (
    DOCUMENT_KIND,
    DOCUMENT_VERSION,
    FLAG_FIELDS,
    flag_apply,
    flag_spec,
    segment_spec,
)


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class FlagUsageInfo:
    evaluations: int
    last_evaluated_at: datetime | None


def flags_with_usage(flags: QuerySet[Flag]) -> QuerySet[Flag]:
    """``flags`` annotated with ``evaluations`` and ``last_evaluated_at`` (None: never)."""
    usage = FlagUsage.objects.filter(key=OuterRef("key"))
    return flags.annotate(
        evaluations=Coalesce(Subquery(usage.values("evaluations")), Value(0)),
        last_evaluated_at=Subquery(usage.values("last_evaluated_at")),
    )


def flag_usage_get(*, flag: Flag) -> FlagUsageInfo:
    """A flag's usage: from its annotations when it was loaded with them, else read."""
    if hasattr(flag, "last_evaluated_at"):
        return FlagUsageInfo(getattr(flag, "evaluations", 0), flag.last_evaluated_at)
    row = FlagUsage.objects.filter(key=flag.key).first()
    if row is None:
        return FlagUsageInfo(0, None)
    return FlagUsageInfo(row.evaluations, row.last_evaluated_at)


def flag_get(*, key: str) -> Flag:
    """One flag by key, with its usage; NotFound when there is none."""
    flag = flags_with_usage(Flag.objects.filter(key=key)).first()
    if flag is None:
        raise NotFound(f"no flag {key!r}", extra={"key": key})
    return flag


def flag_list(*, include_archived: bool = False, tag: str = "") -> QuerySet[Flag]:
    """Flags by key with their usage, without archived ones unless asked."""
    flags = flags_with_usage(Flag.objects.all())
    if not include_archived:
        flags = flags.filter(archived=False)
    return flags.filter(tags__contains=[tag]) if tag else flags


def flag_history(*, key: str) -> QuerySet[FlagVersion]:
    """The versions of a flag, newest first."""
    return FlagVersion.objects.filter(flag__key=key).select_related("actor")


def flag_version_get(*, key: str, version: int) -> FlagVersion:
    """One version of a flag; NotFound when there is none."""
    found = flag_history(key=key).filter(version=version).first()
    if found is None:
        raise NotFound(f"flag {key!r} has no version {version}")
    return found


def flag_version_changes(*, version: FlagVersion) -> list[FieldChange]:
    """The fields ``version`` changed from the version before it (all, for the first)."""
    previous = (
        FlagVersion.objects.filter(flag_id=version.flag_id, version__lt=version.version)
        .order_by("-version")
        .first()
    )
    before = previous.snapshot if previous else {}
    after = version.snapshot
    return [
        FieldChange(field, before.get(field), after.get(field))
        for field in FLAG_FIELDS
        if field not in before or before[field] != after.get(field)
    ]


def flag_tags() -> list[str]:
    """Every tag some flag carries, sorted."""
    unnested = Flag.objects.annotate(tag=Func(F("tags"), function="unnest"))
    return sorted(set(unnested.values_list("tag", flat=True)))


def change_request_list(*, key: str = "", status: str = "") -> QuerySet[ChangeRequest]:
    """Change requests, newest first; of one flag and in one status when asked."""
    requests = ChangeRequest.objects.select_related(
        "flag", "author", "revised_by", "decided_by"
    )
    if key:
        requests = requests.filter(flag__key=key)
    return requests.filter(status=status) if status else requests


def change_request_get(*, request_id: int, key: str = "") -> ChangeRequest:
    """One change request (of flag ``key`` when given); NotFound when there is none."""
    found = change_request_list(key=key).filter(pk=request_id).first()
    if found is None:
        raise NotFound(f"no change request #{request_id}")
    return found


def change_request_approvers(*, request: ChangeRequest) -> list[str]:
    """Who approved the request's current revision."""
    approvals = request.approvals.filter(revision=request.revision)
    return list(approvals.values_list("approver__username", flat=True))


def change_request_diff(*, request: ChangeRequest) -> list[FieldChange]:
    """What applying the request would change on the flag as it is now."""
    before = flag_spec(request.flag)
    proposed = copy.copy(request.flag)
    flag_apply(proposed, request.changes)
    after = flag_spec(proposed)
    return [
        FieldChange(field, before[field], after[field])
        for field in FLAG_FIELDS
        if before[field] != after[field]
    ]


def scheduled_change_list(
    *, key: str = "", status: str = ""
) -> QuerySet[ScheduledChange]:
    """Scheduled changes by when they run; of one flag and in one status when asked."""
    changes = ScheduledChange.objects.select_related("flag", "author")
    if key:
        changes = changes.filter(flag__key=key)
    return changes.filter(status=status) if status else changes


def segment_list() -> QuerySet[Segment]:
    """Segments by key."""
    return Segment.objects.order_by("key")


def flag_specs_all() -> list[dict[str, Any]]:
    """Every flag (archived too) as its JSON spec."""
    return [flag_spec(flag) for flag in Flag.objects.order_by("key")]


# What the engine compiles of a flag (apps.flags.engine.compile_flag).
ENGINE_FIELDS = (
    "key",
    "type",
    "variants",
    "enabled",
    "default_variant",
    "off_variant",
    "rules",
    "requires",
)


def flag_specs_live() -> list[dict[str, Any]]:
    """Every flag not archived, with only the fields evaluation needs: what each
    process reads to rebuild its snapshot, as plain rows (no model instances)."""
    live = Flag.objects.filter(archived=False).order_by("key")
    return list(live.values(*ENGINE_FIELDS))


def segment_specs_all() -> list[dict[str, Any]]:
    """Every segment as its JSON spec."""
    return [segment_spec(segment) for segment in Segment.objects.order_by("key")]


class FlagSetDocument(TypedDict):
    kind: str
    version: int
    flags: list[dict[str, Any]]
    segments: list[dict[str, Any]]


def flag_set_export() -> FlagSetDocument:
    """Every flag (archived too, without its local version) and segment, for import."""
    flags = [
        {field: value for field, value in spec.items() if field != "version"}
        for spec in flag_specs_all()
    ]
    return {
        "kind": DOCUMENT_KIND,
        "version": DOCUMENT_VERSION,
        "flags": flags,
        "segments": segment_specs_all(),
    }


def flags_state_version() -> str:
    """A fingerprint of the flag set in PostgreSQL; changes with every flag write."""
    flags = Flag.objects.aggregate(
        n=Count("id"), v=Sum("version"), at=Max("updated_at")
    )
    segments = Segment.objects.aggregate(n=Count("id"), at=Max("updated_at"))
    parts = (flags["n"], flags["v"] or 0, flags["at"], segments["n"], segments["at"])
    return ".".join(
        str(int(p.timestamp() * 1e6)) if hasattr(p, "timestamp") else str(p or 0)
        for p in parts
    )
