"""Limits on what may be recorded, shared by ``record()`` and the ingest API.

Cheap by design: ``record()`` runs them on the caller's thread.
"""

import math
import re
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from apps.core.exceptions import ValidationFailed

NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:]{0,199}$")
TAG_KEY_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
MAX_TAGS = 16
MAX_TAG_VALUE = 200
MAX_BATCH = 5000
# A sample may be this far in the future (clock skew); older ones must still have
# their raw day partition.
MAX_FUTURE = timedelta(minutes=10)


def as_number(value: object) -> float | None:
    """``value`` as a float; None when it is not a number (text, None, ...)."""
    if isinstance(value, str | bytes | bytearray):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def sample_problems(
    name: str, value: float, tags: dict[str, str], at: datetime
) -> dict[str, list[str]]:
    """Field name → what is wrong with it; empty when the sample is acceptable."""
    problems: dict[str, list[str]] = {}
    if not NAME_RE.match(name):
        problems["name"] = [
            "Must start with a letter or _ and hold only letters, digits, _ . : "
            "(at most 200 characters)."
        ]
    if not math.isfinite(value):
        problems["value"] = ["Must be a finite number."]
    tag_problems = _tag_problems(tags)
    if tag_problems:
        problems["tags"] = tag_problems
    at_problem = _at_problem(at)
    if at_problem:
        problems["at"] = [at_problem]
    return problems


def _tag_problems(tags: dict[str, str]) -> list[str]:
    if len(tags) > MAX_TAGS:
        return [f"At most {MAX_TAGS} tags."]
    bad_keys = sorted(key for key in tags if not TAG_KEY_RE.match(key))
    if bad_keys:
        return [f"Bad tag keys {bad_keys}: letters, digits and _, at most 64."]
    long_values = sorted(
        key for key, value in tags.items() if len(value) > MAX_TAG_VALUE
    )
    if long_values:
        return [f"Tag values longer than {MAX_TAG_VALUE} characters: {long_values}."]
    return []


def _at_problem(at: datetime) -> str | None:
    if at.tzinfo is None:
        return "Must carry a time zone."
    now = timezone.now()
    oldest = now - timedelta(days=settings.OPSCONSOLE_METRICS_RAW_RETENTION_DAYS)
    if not oldest <= at <= now + MAX_FUTURE:
        return "Must be within the raw retention and at most 10 minutes ahead."
    return None


def validate_sample(
    name: str, value: float, tags: dict[str, str], at: datetime
) -> None:
    """Raise ValidationFailed with field paths when the sample breaks a limit."""
    problems = sample_problems(name, value, tags, at)
    if problems:
        raise ValidationFailed(problems)
