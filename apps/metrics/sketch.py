"""A DDSketch-compatible log-bucket histogram, bucketed in the rollup worker.

A positive value v falls in bucket ``ceil(ln(v) / ln(gamma))`` with
``gamma = (1 + a) / (1 - a)`` and relative accuracy ``a = 0.01``; a negative value
in the mirrored bucket; a value whose magnitude is under ``MIN_INDEXABLE`` counts
as zero. A rollup stores its sketch as two arrays: the bucket codes present
(ascending) and their counts, so merging two sketches adds counts by code. A
quantile read from it is within 1 % (relative) of the exact lower quantile
``sorted(values)[floor(q * (n - 1))]`` for any value of magnitude at least
``MIN_INDEXABLE``.

The natural logarithm is the C library's, as ``math.log`` calls it: the minute
rollups bucket whole arrays with ``bucket_codes`` (numpy's own, SIMD ``log``, which
differs from it by an ulp now and then), which takes libm's answer wherever the two
could fall on either side of a bucket boundary, so every value gets the bucket
``bucket_code`` gives it. The database monitor keeps the same buckets, by the same
``math.log``, as a text-keyed map in Redis (``z``, ``<index>``, ``n<index>``);
``quantile``/``quantiles`` read that form.
"""

import functools
import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import numpy.typing as npt

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LN_GAMMA = math.log(GAMMA)
MIN_INDEXABLE = 1e-9
ZERO_KEY = "z"
NEGATIVE_PREFIX = "n"


# Bucket codes: one integer per bucket, 0 for the zero bucket, sign * (index +
# CODE_OFFSET) otherwise (|index| stays far below the offset for any float8:
# ln(1e308) / ln(gamma) is about 35,000). Codes sort as their values do, so a
# sketch whose codes ascend is already in value order.
CODE_OFFSET = 1 << 20


def bucket_code(value: float) -> int:
    """``value``'s bucket code (see CODE_OFFSET)."""
    if abs(value) < MIN_INDEXABLE:
        return 0
    code = math.ceil(math.log(abs(value)) / LN_GAMMA) + CODE_OFFSET
    return code if value > 0 else -code


# numpy's log is within an ulp or two of libm's, so its quotient can only take the
# other side of a boundary when it is this close to a whole number (relative to
# its size, ~1e7 ulps of margin); such values (rare among measured ones, but any
# exact power of ten or of gamma, or 1.0) are bucketed by ``bucket_code`` itself.
BOUNDARY_MARGIN = 1e-9


def bucket_codes(values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """``bucket_code`` of each of ``values``, over the whole array at once."""
    magnitude = np.abs(values)
    indexable = magnitude >= MIN_INDEXABLE
    quotient = np.log(np.where(indexable, magnitude, 1.0)) / LN_GAMMA
    index = np.ceil(quotient)
    margin = BOUNDARY_MARGIN * np.maximum(1.0, np.abs(quotient))
    near = indexable & (np.abs(quotient - np.rint(quotient)) <= margin)
    if near.any():
        exact = np.unique(magnitude[near])
        indexes = [bucket_code(value) - CODE_OFFSET for value in exact.tolist()]
        index[near] = np.array(indexes)[np.searchsorted(exact, magnitude[near])]
    code = index.astype(np.int64) + CODE_OFFSET
    return np.where(indexable, np.where(values > 0, code, -code), 0)


@functools.lru_cache(maxsize=65_536)
def code_value(code: int) -> float:
    """The value a bucket code stands for (within RELATIVE_ACCURACY of its members)."""
    if code == 0:
        return 0.0
    magnitude = 2 * GAMMA ** (abs(code) - CODE_OFFSET) / (GAMMA + 1)
    return magnitude if code > 0 else -magnitude


def _key_code(key: str) -> int:
    if key == ZERO_KEY:
        return 0
    code = int(key.removeprefix(NEGATIVE_PREFIX)) + CODE_OFFSET
    return -code if key.startswith(NEGATIVE_PREFIX) else code


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
    ordered = sorted((_key_code(key), int(count)) for key, count in sketch.items())
    codes = [code for code, _ in ordered]
    counts = [count for _, count in ordered]
    return code_quantiles(codes, counts, qs, lowest=lowest, highest=highest)


def code_quantiles(
    codes: Sequence[int],
    counts: Sequence[int],
    qs: Sequence[float],
    *,
    lowest: float,
    highest: float,
) -> list[float | None]:
    """The quantiles ``qs`` (ascending) of a stored sketch (codes ascending), in
    one walk; each within RELATIVE_ACCURACY, bounded by the exact min and max."""
    total = sum(counts)
    if total == 0:
        return [None] * len(qs)
    found: list[float | None] = []
    seen = 0
    walk: Iterator[tuple[int, int]] = zip(codes, counts, strict=True)
    code = 0
    for q in qs:
        rank = q * (total - 1)
        while seen <= rank:
            step = next(walk, None)
            if step is None:
                break
            code, count = step
            seen += count
        value = code_value(code)
        found.append(min(max(value, lowest), highest) if seen > rank else highest)
    return found
