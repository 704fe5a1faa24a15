"""A flag or segment as its plain JSON spec: what FlagVersion stores and the engine compiles."""

from typing import Any

from django.utils.dateparse import parse_datetime

from apps.flags.models import Flag, Segment

# Every field a write may change; ``key`` is immutable and ``version`` is ours.
FLAG_FIELDS = (
    "name",
    "description",
    "type",
    "variants",
    "json_schema",
    "enabled",
    "default_variant",
    "off_variant",
    "rules",
    "requires",
    "conflicts",
    "tags",
    "owner",
    "protected",
    "requires_approval",
    "expires_at",
    "archived",
)
SEGMENT_FIELDS = ("name", "description", "conditions")
# What ``flags export`` writes and ``flags import`` reads.
DOCUMENT_KIND = "opsconsole.flags"
DOCUMENT_VERSION = 1


def flag_spec(flag: Flag) -> dict[str, Any]:
    """The JSON of a flag (``expires_at`` as ISO 8601)."""
    spec: dict[str, Any] = {"key": flag.key, "version": flag.version}
    for field in FLAG_FIELDS:
        spec[field] = getattr(flag, field)
    spec["conflicts"] = list(flag.conflicts)
    spec["tags"] = list(flag.tags)
    spec["expires_at"] = flag.expires_at.isoformat() if flag.expires_at else None
    return spec


def flag_apply(flag: Flag, changes: dict[str, Any]) -> None:
    """Set ``changes`` (already checked to be FLAG_FIELDS) on ``flag``."""
    for field, value in changes.items():
        if field == "expires_at" and isinstance(value, str):
            value = parse_datetime(value)
        setattr(flag, field, value)


def segment_spec(segment: Segment) -> dict[str, Any]:
    """The JSON of a segment."""
    return {
        "key": segment.key,
        "name": segment.name,
        "description": segment.description,
        "conditions": segment.conditions,
    }
