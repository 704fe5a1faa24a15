"""The query's series merge in numpy: the rollups of the series a tag filter
matches, merged per step bucket, for filters no per-name or per-tag rollup answers.

PostgreSQL reads each series' rollups in the window by the (resolution, series,
bucket) index, one row per series of binary arrays: the rollups' starts, counts,
sums, mins, maxes and sketch lengths, and their sketches' codes and counts
concatenated (``array_send`` less its 20-byte header: each element's length and
value, which one numpy dtype reads). So a million sketch entries cost no Python
object, and PostgreSQL only scans and serializes: merging in SQL (``unnest``, a
sum per step bucket and code) took 4.5-5x its CPU for 100 series
(benchmarks/RESULTS.md, session 13). A read holds the series of about
``ROLLUPS_PER_READ`` rollups (at least one series), so memory does not grow with
the number of series; reads are pipelined, PostgreSQL reading the next while
numpy folds this one into the step buckets' figures and merged sketch entries
(``minutes.sketch_entries``).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from apps.metrics.buffer import PG_EPOCH
from apps.metrics.dbmonitor import pipelined
from apps.metrics.minutes import sketch_entries
from apps.metrics.models import Resolution
from apps.metrics.pgarrays import array_cursor, array_values
from apps.metrics.rollups import SIZE
from apps.metrics.sketch import code_value

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
READ_SQL = """
SELECT r.* FROM unnest(%(series)s::int8[]) AS s(id), LATERAL (
    SELECT array_agg(bucket_start) AS starts, array_agg(count) AS n,
           array_agg(sum) AS s, array_agg(min) AS lo, array_agg(max) AS hi,
           array_agg(cardinality(sketch_keys)::int8) AS lengths,
           string_agg(substr(array_send(sketch_keys), 21), ''::bytea) AS codes,
           string_agg(substr(array_send(sketch_counts), 21), ''::bytea) AS counts
    FROM metrics_rollup
    WHERE series_id = s.id AND resolution = %(resolution)s
      AND bucket_start >= %(start)s AND bucket_start < %(end)s
) r WHERE r.starts IS NOT NULL
"""
# Reads of 5,000 rollups were fastest for 100 series (30 days of hours, 24 hours
# of minutes): 1,000 took ~1.5x as long, one read of them all ~2x (its ~420 MB of
# sketch entries, 20 bytes a code in binary, copied a few times). An hour's
# rollup holds ~290 codes: ~30 MB of binary sketches per read.
ROLLUPS_PER_READ = 5_000
_CODE = np.dtype([("length", ">i4"), ("value", ">i4")])
_COUNT = np.dtype([("length", ">i4"), ("value", ">i8")])
QUANTILES = (0.5, 0.95, 0.99)
_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class MergedBucket:
    """Step bucket ``index`` (from the window's start) of the merged series, its
    p50/p95/p99 as ``sketch.code_quantiles`` reads them."""

    index: int
    count: int
    sum: float
    min: float
    max: float
    quantiles: tuple[float | None, ...]


@dataclass(frozen=True, slots=True)
class _Merge:
    """Per step bucket: rollups, count and sum (float: exact to 2**53), min and
    max; the merged sketch entries (bucket, code, count) by bucket, then code."""

    rollups: Ints
    n: Floats
    s: Floats
    lo: Floats
    hi: Floats
    group: Ints
    codes: Ints
    counts: Ints


def series_merge(
    *,
    connection: psycopg.Connection[Any],
    series: Sequence[int],
    resolution: Resolution,
    start: datetime,
    end: datetime,
    step: int,
) -> list[MergedBucket]:
    """The non-empty ``step`` buckets of [start, end) over the ``resolution``
    rollups of ``series``, in the connection's current transaction."""
    per_series = -(-(end - start) // SIZE[resolution])
    per_read = max(1, ROLLUPS_PER_READ // per_series)
    pieces = [list(series[i : i + per_read]) for i in range(0, len(series), per_read)]
    params = {"resolution": resolution.value, "start": start, "end": end}
    buckets = -(-(end - start) // timedelta(seconds=step))
    merge = _empty(buckets)
    origin, width = (start - PG_EPOCH) // _US, step * 1_000_000
    readers = (array_cursor(connection), array_cursor(connection))
    # Pipelined: PostgreSQL reads the next piece while numpy merges this one.
    with pipelined(connection) as pipeline:
        if pieces:
            pipeline.execute(
                readers[0], READ_SQL, {**params, "series": pieces[0]}, binary=True
            )
        for turn in range(len(pieces)):
            rows = pipeline.fetchall(readers[turn % 2])
            if turn + 1 < len(pieces):
                pipeline.execute(
                    readers[1 - turn % 2],
                    READ_SQL,
                    {**params, "series": pieces[turn + 1]},
                    binary=True,
                )
            merge = _folded(merge, rows, origin, width)
    return _buckets(merge)


def _empty(buckets: int) -> _Merge:
    none = np.empty(0, np.int64)
    return _Merge(
        rollups=np.zeros(buckets, np.int64),
        n=np.zeros(buckets),
        s=np.zeros(buckets),
        lo=np.full(buckets, np.inf),
        hi=np.full(buckets, -np.inf),
        group=none,
        codes=none,
        counts=none,
    )


def _folded(
    merge: _Merge, rows: Sequence[tuple[bytes, ...]], origin: int, width: int
) -> _Merge:
    """``merge`` with the rollups of ``rows`` (rows of READ_SQL) added."""
    if not rows:
        return merge

    def column(index: int, kind: str) -> npt.NDArray[Any]:
        return np.concatenate([array_values(row[index], kind) for row in rows])

    bucket = (column(0, "i8") - origin) // width
    buckets = len(merge.rollups)
    lo, hi = merge.lo.copy(), merge.hi.copy()
    np.minimum.at(lo, bucket, column(3, "f8"))
    np.maximum.at(hi, bucket, column(4, "f8"))
    codes = np.concatenate([np.frombuffer(row[6], _CODE)["value"] for row in rows])
    counts = np.concatenate([np.frombuffer(row[7], _COUNT)["value"] for row in rows])
    group, codes, counts = sketch_entries(
        np.concatenate((merge.group, np.repeat(bucket, column(5, "i8")))),
        np.concatenate((merge.codes, codes.astype(np.int64))),
        np.concatenate((merge.counts, counts.astype(np.int64))),
        buckets,
    )
    return _Merge(
        rollups=merge.rollups + np.bincount(bucket, minlength=buckets),
        n=merge.n + np.bincount(bucket, column(1, "i8"), minlength=buckets),
        s=merge.s + np.bincount(bucket, column(2, "f8"), minlength=buckets),
        lo=lo,
        hi=hi,
        group=group,
        codes=codes,
        counts=counts,
    )


def _buckets(merge: _Merge) -> list[MergedBucket]:
    """The buckets holding a rollup, their quantiles walked as
    ``sketch.code_quantiles`` does: the first code whose running count passes
    ``q * (total - 1)``, its value bounded by the exact min and max."""
    present = np.flatnonzero(merge.rollups)
    first = np.searchsorted(merge.group, present, "left")
    last = np.searchsorted(merge.group, present, "right")
    running = np.concatenate(([0], np.cumsum(merge.counts)))
    before, total = running[first], running[last] - running[first]
    # A running count (an integer) passes a rank exactly when it passes its floor.
    found = [
        np.searchsorted(
            running[1:], before + np.floor(q * (total - 1)).astype(np.int64), "right"
        )
        for q in QUANTILES
    ]
    padded = np.append(merge.codes, 0)  # a bucket with no sketch ends past the end
    codes = [padded[at].tolist() for at in found]
    low, high = merge.lo[present].tolist(), merge.hi[present].tolist()
    return [
        MergedBucket(
            index=index,
            count=count,
            sum=total_sum,
            min=low[i],
            max=high[i],
            quantiles=tuple(
                min(max(code_value(code[i]), low[i]), high[i]) if sketched else None
                for code in codes
            ),
        )
        for i, (index, count, total_sum, sketched) in enumerate(
            zip(
                present.tolist(),
                np.rint(merge.n[present]).astype(np.int64).tolist(),
                merge.s[present].tolist(),
                (total > 0).tolist(),
                strict=True,
            )
        )
    ]
