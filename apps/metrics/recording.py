"""``record()``: the hot path on the caller's thread.

A series (name + tags exactly as the caller passes them) is validated the first
time it is seen and remembered (``series.known``: its number in the registry),
so the next call for it costs a dict lookup, a finite-value check, a clock read
and one ``+=`` of 24 packed bytes. Sorting tags, database ids and
formatting wait for the persister's thread, which encodes whole batches with
numpy. A sample with an explicit ``at`` is checked in full every time (its time
must fit retention).
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from time import time_ns

from django.utils import timezone

from apps.core.exceptions import ValidationFailed
from apps.metrics import process
from apps.metrics.buffer import PACK, Row, at_us, unix_ns
from apps.metrics.series import Series, known, registry, series_of, tags_tuple
from apps.metrics.validation import sample_problems

# As many as series.INTERNED_MAX: each component records 2 series (10,000
# components make 20,000), and clearing a cache smaller than the working set
# would send every call down the validated path again.
KNOWN_MAX = 100_000
NOT_FINITE = {"value": ["Must be a finite number."]}


def record(
    name: str,
    value: float,
    tags: Mapping[str, str] | None = None,
    at: datetime | None = None,
) -> None:
    """Queue one sample for the persister; never blocks on I/O.

    Raises ValidationFailed for a bad name, tags, value or time; a sample refused
    because the buffer is full is counted (see /metrics), not raised.
    """
    try:
        number = known[(name, tuple(tags.items())) if tags else name]
    # Not seen yet, or an unhashable tag value (the checked path says what).
    except (KeyError, TypeError):
        number = None
    if number is None or at is not None:
        series, us = _checked_series(name, value, tags, at)
        number, ns = registry.index(series), unix_ns(us)
        if at is None:
            key = (name, tuple(tags.items())) if tags else name
            if len(known) >= KNOWN_MAX:
                known.clear()
            known[key] = number
    else:
        ns = time_ns()
    value = float(value)
    if value - value != 0.0:  # inf - inf and nan - nan are nan
        raise ValidationFailed(NOT_FINITE)
    buffer = process.current
    if buffer is None:
        buffer = process.buffer()
    data = buffer.data
    if len(data) < buffer.check_at:  # Buffer.add, inlined
        data += PACK(number, ns, value)
    else:
        buffer.add_slow(number, ns, value)


def checked_row(
    name: str, value: float, tags: Mapping[str, str] | None, at: datetime | None
) -> tuple[Row, dict[str, list[str]]]:
    """The buffer row for a sample and what is wrong with it (empty when nothing)."""
    at = timezone.now() if at is None else at
    str_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    value = float(value)
    problems = sample_problems(name, value, str_tags, at)
    utc = at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    row = (series_of(name, tags_tuple(str_tags)), at_us(utc), value)
    return row, problems


def _checked_series(
    name: str, value: float, tags: Mapping[str, str] | None, at: datetime | None
) -> tuple[Series, int]:
    (series, us, _), problems = checked_row(name, value, tags, at)
    if problems:
        raise ValidationFailed(problems)
    return series, us
