"""A DDSketch-compatible log-bucket histogram, bucketed inside PostgreSQL.

A positive value v falls in bucket ``ceil(ln(v) / ln(gamma))`` with
``gamma = (1 + a) / (1 - a)`` and relative accuracy ``a = 0.01``; a negative value
in the mirrored bucket (key prefixed with ``n``); a value whose magnitude is under
``MIN_INDEXABLE`` counts as zero (key ``z``). A sketch is a mapping key → count, so
merging two sketches adds counts. A quantile read from it is within 1 % (relative)
of the exact lower quantile ``sorted(values)[floor(q * (n - 1))]`` for any value of
magnitude at least ``MIN_INDEXABLE``.
"""

import math
from collections.abc import Mapping

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LN_GAMMA = math.log(GAMMA)
MIN_INDEXABLE = 1e-9
ZERO_KEY = "z"
NEGATIVE_PREFIX = "n"


def bucket_parts_sql(column: str) -> tuple[str, str]:
    """SQL giving ``column``'s bucket as (sign: -1, 0 for the zero bucket, 1; index,
    NULL in the zero bucket): integers, cheap to group by before keys are built."""
    indexable = f"abs({column}) >= {MIN_INDEXABLE!r}"
    sign = f"CASE WHEN {indexable} THEN sign({column})::int ELSE 0 END"
    index = (
        f"CASE WHEN {indexable} THEN ceil(ln(abs({column})) / {LN_GAMMA!r})::int END"
    )
    return sign, index


def bucket_key_from_parts_sql(sign: str, index: str) -> str:
    """SQL giving the text key of the bucket (``sign``, ``index``)."""
    return (
        f"CASE {sign} WHEN 0 THEN '{ZERO_KEY}' WHEN 1 THEN {index}::text "
        f"ELSE '{NEGATIVE_PREFIX}' || {index} END"
    )


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
    ordered = sorted((_key_value(key), int(count)) for key, count in sketch.items())
    total = sum(count for _, count in ordered)
    if total == 0:
        return None
    rank = q * (total - 1)
    seen = 0
    for value, count in ordered:
        seen += count
        if seen > rank:
            return min(max(value, lowest), highest)
    return highest
