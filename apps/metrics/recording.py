"""``record()``: the hot path on the caller's thread.

A series (name + tags exactly as the caller passes them) is validated the first
time it is seen and remembered (``series.known``: its number in the registry),
so the next call for it costs a dict lookup, a finite-value check, a clock read
and one ``+=`` of 24 packed bytes. Sorting tags, database ids and
formatting wait for the persister's thread, which encodes whole batches with
numpy. A sample with an explicit ``at`` is checked in full every time (its time
must fit retention).

That known-series path runs in C (``_recordc.c``, built by ``make``: ~200 ns a
call against ~450 ns here) and calls back into ``_record_checked`` for anything
else; ``record_python`` is the same in Python, ``record`` where C is not built.
"""

from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime
from struct import error as struct_error
from time import time_ns

from django.utils import timezone

from apps.core.exceptions import ValidationFailed
from apps.metrics import process
from apps.metrics.buffer import PACK, Row, at_us, unix_ns
from apps.metrics.series import known, registry, series_of, tags_tuple
from apps.metrics.validation import as_number, sample_problems

# As many as series.INTERNED_MAX: each component records 2 series (10,000
# components make 20,000), and clearing a cache smaller than the working set
# would send every call down the validated path again.
KNOWN_MAX = 100_000
NOT_FINITE = {"value": ["Must be a finite number."]}
NOT_A_NUMBER = {"value": ["Must be a number."]}


def record_python(
    name: str,
    value: float,
    tags: Mapping[str, str] | None = None,
    at: datetime | None = None,
) -> None:
    """Queue one sample for the persister; never blocks on I/O.

    Raises ValidationFailed for a bad name, tags, value or time; a sample refused
    because the buffer is full is counted (see /metrics), not raised.

    ``record`` is this function where ``_recordc`` is not built; where it is,
    ``_recordc.record`` does the same for a known series in one C call.
    """
    try:
        number = known[(name, tuple(tags.items())) if tags else name]
    # Not seen yet, or an unhashable tag value (the checked path says what).
    except (KeyError, TypeError):
        return _record_checked(name, value, tags, at)
    if at is not None:
        return _record_checked(name, value, tags, at)
    # No float(): PACK converts a number as float() would; what is not a number
    # fails the subtraction or the packing.
    try:
        if value - value != 0.0:  # inf - inf and nan - nan are nan
            raise ValidationFailed(NOT_FINITE)
        sample = PACK(number, time_ns(), value)
    except (TypeError, OverflowError, struct_error):
        raise ValidationFailed(NOT_A_NUMBER) from None
    buffer = process.current
    if buffer is None:
        buffer = process.buffer()
    data = buffer.data
    if len(data) < buffer.check_at:  # Buffer.add, inlined
        data += sample
    else:
        buffer.add_slow(sample)
    return None


def checked_row(
    name: str, value: float, tags: Mapping[str, str] | None, at: datetime | None
) -> tuple[Row, dict[str, list[str]]]:
    """The buffer row for a sample and what is wrong with it (empty when nothing)."""
    at = timezone.now() if at is None else at
    str_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    number = as_number(value)
    problems = sample_problems(name, 0.0 if number is None else number, str_tags, at)
    if number is None:
        problems["value"] = NOT_A_NUMBER["value"]
    value = 0.0 if number is None else number
    utc = at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    row = (series_of(name, tags_tuple(str_tags)), at_us(utc), value)
    return row, problems


def _record_checked(
    name: str, value: float, tags: Mapping[str, str] | None, at: datetime | None
) -> None:
    (series, us, number_value), problems = checked_row(name, value, tags, at)
    if problems:
        raise ValidationFailed(problems)
    number = registry.index(series)
    if at is None:
        if len(known) >= KNOWN_MAX:
            known.clear()
        # A tag value that is no str but prints as one (validated as its str)
        # may be unhashable: such a series takes this path every time.
        with suppress(TypeError):
            known[(name, tuple(tags.items())) if tags else name] = number
    process.buffer().add(number, unix_ns(us), number_value)


try:
    from apps.metrics import _recordc
except ImportError:  # not built (`make venv` builds it): the same, in Python
    record = record_python
else:
    _recordc.bind(known, _record_checked, vars(process), process.buffer)
    record = _recordc.record
