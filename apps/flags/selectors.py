"""Reads of the flags app."""

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, Func, Max, QuerySet, Sum

from apps.core.exceptions import NotFound
from apps.flags.models import Flag, FlagVersion, Segment
from apps.flags.specs import FLAG_FIELDS, flag_spec, segment_spec


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    before: Any
    after: Any


def flag_get(*, key: str) -> Flag:
    """One flag by key; NotFound when there is none."""
    flag = Flag.objects.filter(key=key).first()
    if flag is None:
        raise NotFound(f"no flag {key!r}", extra={"key": key})
    return flag


def flag_list(*, include_archived: bool = False, tag: str = "") -> QuerySet[Flag]:
    """Flags by key, without archived ones unless asked."""
    flags = Flag.objects.all()
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


def segment_list() -> QuerySet[Segment]:
    """Segments by key."""
    return Segment.objects.order_by("key")


def flag_specs_all() -> list[dict[str, Any]]:
    """Every flag (archived too) as its JSON spec."""
    return [flag_spec(flag) for flag in Flag.objects.order_by("key")]


def segment_specs_all() -> list[dict[str, Any]]:
    """Every segment as its JSON spec."""
    return [segment_spec(segment) for segment in Segment.objects.order_by("key")]


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
