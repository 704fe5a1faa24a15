"""A DDSketch-compatible log-bucket histogram, bucketed inside PostgreSQL.

A positive value v falls in bucket ``ceil(ln(v) / ln(gamma))`` with
``gamma = (1 + a) / (1 - a)`` and relative accuracy ``a = 0.01``; a negative value
in the mirrored bucket (key prefixed with ``n``); a value whose magnitude is under
``MIN_INDEXABLE`` counts as zero (key ``z``). A sketch is a mapping key → count, so
merging two sketches adds counts. A quantile read from it is within 1 % (relative)
of the exact lower quantile ``sorted(values)[floor(q * (n - 1))]`` for any value of
magnitude at least ``MIN_INDEXABLE``.
"""

import functools
import math
from collections.abc import Mapping, Sequence

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LN_GAMMA = math.log(GAMMA)
MIN_INDEXABLE = 1e-9
ZERO_KEY = "z"
NEGATIVE_PREFIX = "n"


# Bucket codes: one integer per bucket, so raw rows group on a single int key:
# 0 for the zero bucket, sign * (index + CODE_OFFSET) otherwise (|index| stays far
# below the offset for any float8: ln(1e308) / ln(gamma) is about 35,000).
CODE_OFFSET = 1 << 20


def bucket_code_sql(column: str) -> str:
    """SQL giving ``column``'s bucket code (see CODE_OFFSET)."""
    return (
        f"CASE WHEN abs({column}) >= {MIN_INDEXABLE!r} THEN sign({column})::int * "
        f"(ceil(ln(abs({column})) / {LN_GAMMA!r})::int + {CODE_OFFSET}) ELSE 0 END"
    )


def bucket_key_from_code_sql(code: str) -> str:
    """SQL giving the text key (``z``, ``<index>``, ``n<index>``) of a bucket code."""
    return (
        f"CASE WHEN {code} = 0 THEN '{ZERO_KEY}' "
        f"WHEN {code} > 0 THEN ({code} - {CODE_OFFSET})::text "
        f"ELSE '{NEGATIVE_PREFIX}' || (-{code} - {CODE_OFFSET}) END"
    )


@functools.lru_cache(maxsize=65_536)
def _key_value(key: str) -> float:
    if key == ZERO_KEY:
        return 0.0
    negative = key.startswith(NEGATIVE_PREFIX)
    index = int(key.removeprefix(NEGATIVE_PREFIX))
    magnitude = 2 * GAMMA**index / (GAMMA + 1)
    return -magnitude if negative else magnitude


def quantile(
    sketch: Mapping[str, int], q: float, *, lowest: float, highest: float
) -> float | None:
    """The q-quantile (0 ≤ q ≤ 1) within RELATIVE_ACCURACY; None for an empty sketch.

    ``lowest``/``highest`` are the exact min and max, which bound the estimate.
    """
    return quantiles(sketch, (q,), lowest=lowest, highest=highest)[0]


def quantiles(
    sketch: Mapping[str, int],
    qs: Sequence[float],
    *,
    lowest: float,
    highest: float,
) -> list[float | None]:
    """``quantile`` of each of ``qs`` (ascending), from one sort and one walk."""
    ordered = sorted((_key_value(key), int(count)) for key, count in sketch.items())
    total = sum(count for _, count in ordered)
    if total == 0:
        return [None] * len(qs)
    found: list[float | None] = []
    seen = 0
    walk = iter(ordered)
    for q in qs:
        rank = q * (total - 1)
        while seen <= rank:
            step = next(walk, None)
            if step is None:
                break
            value, count = step
            seen += count
        found.append(min(max(value, lowest), highest) if seen > rank else highest)
    return found
