"""Every read of the metrics app: range queries over rollups, the DB query monitor."""

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis
from django.conf import settings
from django.db import connection, transaction

from apps.core.exceptions import ValidationFailed
from apps.metrics.buffer import PG_EPOCH
from apps.metrics.db import raw_connection
from apps.metrics.dbmonitor import QueryNote, db_key
from apps.metrics.models import Resolution
from apps.metrics.retention import retention_days
from apps.metrics.rollups import SIZE
from apps.metrics.series import series_hash, tags_tuple
from apps.metrics.seriesmerge import MergedBucket, series_merge
from apps.metrics.sketch import code_quantiles, quantile

MAX_BUCKETS = 10_000
# The rollups of the query over one resolution and [start, end), "b" being the
# step bucket each falls in: without a tag filter, or with one tag whose key is
# in OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS, the name's (or name and tag's) own
# rollups (every series already merged by the rollup task, one row per bucket).
# Any other filter merges the rollups of the name's series whose tags contain it
# in numpy (``seriesmerge``).
NAME_ROLLUPS_SQL = """
SELECT date_bin(%(step)s, r.bucket_start, %(start)s) AS b, r.*
FROM metrics_namerollup r
WHERE r.name = %(name)s AND r.tag = %(tag)s AND r.resolution = %(resolution)s
  AND r.bucket_start >= %(start)s AND r.bucket_start < %(end)s
"""
# The series a filter matches, looked up first: their rollups are then read by
# the (resolution, series, bucket) index.
MATCHING_SERIES_SQL = (
    "SELECT id FROM metrics_series WHERE name = %(name)s AND tags @> %(tags)s::jsonb"
)


def _query_sql(rollups: str) -> str:
    # The plain aggregates per step bucket, and the sketch as it is where the
    # bucket holds one rollup (min() of one array is that array): a step equal
    # to the resolution merges nothing. Only the buckets holding several rollups
    # are merged (counts of equal codes added, codes ascending). Each scan is
    # inlined: a CTE read twice would copy every sketch into a work table.
    # Python then reads one sketch per bucket.
    return f"""
SELECT a.b, a.n, a.s, a.lo, a.hi, coalesce(k.keys, a.keys),
       coalesce(k.counts, a.counts)
FROM (
    SELECT b, sum(count)::bigint AS n, sum(sum) AS s, min(min) AS lo, max(max) AS hi,
           CASE WHEN count(*) = 1 THEN min(sketch_keys) END AS keys,
           CASE WHEN count(*) = 1 THEN min(sketch_counts) END AS counts
    FROM ({rollups}) r GROUP BY b
) a LEFT JOIN (
    SELECT b, array_agg(key ORDER BY key) AS keys, array_agg(c ORDER BY key) AS counts
    FROM (
        SELECT r.b, e.key, sum(e.c)::bigint AS c
        FROM ({rollups}) r, unnest(r.sketch_keys, r.sketch_counts) AS e(key, c)
        WHERE r.b IN (SELECT b FROM ({rollups}) r GROUP BY b HAVING count(*) > 1)
        GROUP BY 1, 2
    ) merged GROUP BY b
) k USING (b)
ORDER BY a.b
"""  # noqa: S608 - built from constants only


NAME_QUERY_SQL = _query_sql(NAME_ROLLUPS_SQL)
# For the query's transaction only. Its parts join on the step bucket, never
# through an index: a nested loop wins only when a side is a few rows, and with
# rollups written moments ago (statistics that think them few) the planner ran
# the whole merge once per bucket that way: 14M buffer reads for 425 rollups,
# minutes per query. Hash and merge joins keep it linear, and parallel.
NO_NESTED_LOOPS_SQL = "SET LOCAL enable_nestloop = off"


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    count: int
    sum: float
    min: float
    max: float
    avg: float
    p50: float | None
    p95: float | None
    p99: float | None


def resolution_for(*, step: int) -> Resolution:
    """The coarsest rollup whose buckets tile ``step`` seconds exactly."""
    for resolution in (Resolution.DAY, Resolution.HOUR, Resolution.MINUTE):
        size = int(SIZE[resolution].total_seconds())
        if step >= size and step % size == 0:
            return resolution
    raise ValidationFailed({"step": ["Must be a whole number of minutes (≥ 60)."]})


def metrics_query(
    *, name: str, tags: dict[str, str], start: datetime, end: datetime, step: int
) -> tuple[Resolution, list[Bucket]]:
    """Count, sum, min, max, avg and p50/p95/p99 per ``step`` over [start, end)."""
    if end <= start or (end - start).total_seconds() / step > MAX_BUCKETS:
        raise ValidationFailed(
            {"to": [f"Must be after from, with at most {MAX_BUCKETS} steps between."]}
        )
    resolution = resolution_for(step=step)
    tag = rollup_tag(tags=tags)
    params: dict[str, Any] = {
        "name": name,
        "tag": tag,
        "tags": _json(tags),
        "resolution": resolution.value,
        "start": start,
        "end": end,
        "step": timedelta(seconds=step),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        if tag is None:
            cursor.execute(MATCHING_SERIES_SQL, params)
            series = [row[0] for row in cursor.fetchall()]
            return resolution, _series_buckets(series, resolution, start, end, step)
        cursor.execute(NO_NESTED_LOOPS_SQL)
        cursor.execute(NAME_QUERY_SQL, params)
        return resolution, [_bucket(*row) for row in cursor.fetchall()]


def rollup_tag(*, tags: dict[str, str]) -> str | None:
    """The ``metrics_namerollup.tag`` holding the merge of the series matching the
    filter ``tags`` ('' for no filter, "key=value" for one tag whose key is
    configured), or None when only merging the series' own rollups answers."""
    if not tags:
        return ""
    if len(tags) == 1:
        ((key, value),) = tags.items()
        if key in settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS:
            return f"{key}={value}"
    return None


def _bucket(
    start: datetime,
    count: int,
    total: float,
    low: float,
    high: float,
    keys: list[int],
    counts: list[int],
) -> Bucket:
    p50, p95, p99 = code_quantiles(
        keys, counts, (0.5, 0.95, 0.99), lowest=low, highest=high
    )
    return Bucket(start, count, total, low, high, total / count, p50, p95, p99)


def _series_buckets(
    series: list[int],
    resolution: Resolution,
    start: datetime,
    end: datetime,
    step: int,
) -> list[Bucket]:
    merged = series_merge(
        connection=raw_connection(),
        series=series,
        resolution=resolution,
        start=start,
        end=end,
        step=step,
    )
    return [_merged_bucket(bucket, start, step) for bucket in merged]


def _merged_bucket(merged: MergedBucket, start: datetime, step: int) -> Bucket:
    # As date_bin's buckets came back from PostgreSQL: in UTC.
    at = start.astimezone(UTC) + merged.index * timedelta(seconds=step)
    average = merged.sum / merged.count
    return Bucket(
        at, merged.count, merged.sum, merged.min, merged.max, average, *merged.quantiles
    )


def _json(tags: dict[str, str]) -> str:
    return json.dumps(tags)


@dataclass(frozen=True, slots=True)
class FingerprintStats:
    """A query fingerprint's totals across the fleet, in milliseconds."""

    fingerprint: str
    count: int
    total_ms: float
    mean_ms: float
    p95_ms: float | None


def _redis() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=2, decode_responses=True
    )


def db_queries(*, which: str, limit: int = 50) -> list[QueryNote]:
    """The newest ``recent`` or ``slow`` queries noted by any process, newest first."""
    raw = cast(list[str], _redis().lrange(db_key(which), 0, limit - 1))
    return [QueryNote(**json.loads(item)) for item in raw]


def db_stats(*, limit: int = 50) -> list[FingerprintStats]:
    """Count, total, mean and p95 per fingerprint, the most total time first."""
    client = _redis()
    texts = cast(dict[str, str], client.hgetall(db_key("fingerprints")))
    counts = cast(dict[str, str], client.hgetall(db_key("count")))
    totals = cast(dict[str, str], client.hgetall(db_key("total_ms")))
    top = sorted(texts, key=lambda ident: -float(totals.get(ident, 0)))[:limit]
    pipe = client.pipeline(transaction=False)
    for ident in top:
        pipe.hgetall(db_key(f"sketch:{ident}"))
    return [
        _fingerprint_stats(texts[i], int(counts.get(i, 0)), float(totals.get(i, 0)), s)
        for i, s in zip(top, pipe.execute(), strict=True)
    ]


def _fingerprint_stats(
    text: str, count: int, total: float, sketch: dict[str, str]
) -> FingerprintStats:
    counts = {key: int(value) for key, value in sketch.items()}
    p95 = quantile(counts, 0.95, lowest=0.0, highest=math.inf)
    mean = total / count if count else 0.0
    return FingerprintStats(text, count, round(total, 3), round(mean, 3), p95)


# -- Summaries over long windows (issue #7 item 6) ----------------------------
# A window is read from the coarsest rollups that tile it: whole days from day
# rollups, whole hours from hour rollups, the minutes at either end from minute
# rollups, so a year reads at most ~450 rows per series (a day at most ~140).
# ``t`` lists (window, resolution, from, to) ranges; one index range scan each.
RANGES_SQL = """
FROM unnest(%(w)s::int[], %(res)s::text[], %(lo)s::timestamptz[],
            %(hi)s::timestamptz[]) AS t(w, res, lo, hi)
JOIN metrics_rollup r ON r.resolution = t.res AND r.series_id = %(series)s
 AND r.bucket_start >= t.lo AND r.bucket_start < t.hi
"""
SUMMARY_SQL = f"""
SELECT t.w, count(*), sum(r.count)::bigint, sum(r.sum), min(r.min), max(r.max),
       min(r.bucket_start)
{RANGES_SQL} GROUP BY t.w
"""
# Hours (days) still due to be rolled, or rolled again: read from the finer
# rollups instead, or the window would lose them for the seconds until they are.
PENDING_SQL = """
SELECT resolution, bucket_start FROM metrics_pendingrollup
WHERE resolution IN ('hour', 'day') AND bucket_start >= %s ORDER BY bucket_start
"""
Range = tuple[Resolution, datetime, datetime]
MINUTE, HOUR, DAY = Resolution.MINUTE, Resolution.HOUR, Resolution.DAY


@dataclass(frozen=True, slots=True)
class Summary:
    """One series over one window; None figures when it has no samples there."""

    count: int
    sum: float
    min: float | None
    max: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    # The start of the oldest rollup read, and how many rollup rows were read.
    first: datetime | None
    rollups: int


EMPTY = Summary(0, 0.0, None, None, None, None, None, None, 0)


def metrics_summaries(
    *,
    name: str,
    tags: dict[str, str],
    windows: Sequence[tuple[datetime, datetime]],
    percentiles: bool = True,
) -> list[Summary]:
    """Count, sum, min, max and p50/p95/p99 of the series ``name`` with exactly
    ``tags`` over each [start, end) of ``windows``, from rollups.

    A window covers its whole minutes from ``start`` rounded up to the minute up
    to the last rolled minute before ``end`` (rollups close a minute a few seconds
    after it ends and run every 15 s). One that starts before the name's minute
    rollups' retention starts at the next whole hour instead (before its hours',
    at the next whole day).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM metrics_series WHERE name = %s AND tags_hash = %s",
            [name, series_hash(tags_tuple(tags))],
        )
        found = cursor.fetchone()
        if found is None or not windows:
            return [EMPTY] * len(windows)
        cursor.execute(PENDING_SQL, [min(start for start, _ in windows)])
        pending: dict[Resolution, list[datetime]] = {}
        for resolution, at in cursor.fetchall():
            pending.setdefault(Resolution(resolution), []).append(at)
        kept = {
            resolution: timedelta(days=retention_days(name=name, resolution=resolution))
            for resolution in (MINUTE, HOUR)
        }
        params = _ranges_params(found[0], windows, pending, kept)
        cursor.execute(SUMMARY_SQL, params)
        figures = {row[0]: row[1:] for row in cursor.fetchall()}
        sketches = _sketch_merged(cursor, params) if percentiles else {}
    return [
        _summary(figures.get(index), sketches.get(index))
        for index in range(len(windows))
    ]


def metrics_summary(
    *, name: str, tags: dict[str, str], start: datetime, end: datetime
) -> Summary:
    """``metrics_summaries`` of one window."""
    return metrics_summaries(name=name, tags=tags, windows=[(start, end)])[0]


SKETCH_MERGED_SQL = f"""
SELECT w, array_agg(key ORDER BY key), array_agg(c ORDER BY key) FROM (
    SELECT t.w, e.key, sum(e.c)::bigint AS c
    {RANGES_SQL}, unnest(r.sketch_keys, r.sketch_counts) AS e(key, c)
    GROUP BY 1, 2
) merged GROUP BY w
"""  # noqa: S608 - built from constants only


def _sketch_merged(
    cursor: Any, params: dict[str, Any]
) -> dict[int, tuple[list[int], list[int]]]:
    """Reads the stored sketch format (``metrics_rollup.sketch_keys`` bucket codes,
    ascending, and ``sketch_counts``): each window's rollups merged into one pair of
    arrays, codes ascending. The only read of the sketch outside the rollups and
    ``metrics_query``: switch it here when the format changes."""
    cursor.execute(SKETCH_MERGED_SQL, params)
    return {index: (keys, counts) for index, keys, counts in cursor.fetchall()}


def _summary(
    figures: tuple[Any, ...] | None, sketch: tuple[list[int], list[int]] | None
) -> Summary:
    if figures is None:
        return EMPTY
    rollups, count, total, low, high, first = figures
    p50 = p95 = p99 = None
    if sketch:
        keys, counts = sketch
        p50, p95, p99 = code_quantiles(
            keys, counts, (0.5, 0.95, 0.99), lowest=low, highest=high
        )
    return Summary(count, total, low, high, p50, p95, p99, first, rollups)


def _ranges_params(
    series: int,
    windows: Sequence[tuple[datetime, datetime]],
    pending: dict[Resolution, list[datetime]],
    kept: Mapping[Resolution, timedelta],
) -> dict[str, Any]:
    rows = [
        (index, *piece)
        for index, (start, end) in enumerate(windows)
        for piece in window_ranges(start=start, end=end, pending=pending, kept=kept)
    ]
    return {
        "series": series,
        "w": [row[0] for row in rows],
        "res": [row[1].value for row in rows],
        "lo": [row[2] for row in rows],
        "hi": [row[3] for row in rows],
    }


def window_ranges(
    *,
    start: datetime,
    end: datetime,
    pending: dict[Resolution, list[datetime]],
    kept: Mapping[Resolution, timedelta],
) -> list[Range]:
    """The rollup ranges that tile [start, end): minutes, hours, days, hours,
    minutes (empty ones left out). Hours (days) stop at the first one still
    ``pending`` (ascending) in the window: finer rollups cover from there. A
    window starting before the minutes ``kept`` starts at the next whole hour,
    before the hours kept at the next whole day."""
    minute, hour, day = (SIZE[r] for r in (MINUTE, HOUR, DAY))
    m0, m1 = _ceil(start, minute), _floor(end, minute)
    if m0 < end - kept[MINUTE]:
        m0 = _ceil(m0, hour)
    if m0 < end - kept[HOUR]:
        m0 = _ceil(m0, day)
    h0 = _ceil(m0, hour)
    h1 = max(h0, _first_pending(pending, HOUR, h0, _floor(m1, hour)))
    d0 = _ceil(h0, day)
    d1 = max(d0, _first_pending(pending, DAY, d0, _floor(h1, day)))
    if h0 >= h1:
        pieces = [(MINUTE, m0, m1)]
    elif d0 >= d1:
        pieces = [(MINUTE, m0, h0), (HOUR, h0, h1), (MINUTE, h1, m1)]
    else:
        pieces = [(MINUTE, m0, h0), (HOUR, h0, d0), (DAY, d0, d1)]
        pieces += [(HOUR, d1, h1), (MINUTE, h1, m1)]
    return [(res, low, high) for res, low, high in pieces if low < high]


def _first_pending(
    pending: dict[Resolution, list[datetime]],
    resolution: Resolution,
    low: datetime,
    high: datetime,
) -> datetime:
    """The first bucket of ``resolution`` still pending in [low, high), else high."""
    return next((at for at in pending.get(resolution, ()) if low <= at < high), high)


def _floor(moment: datetime, size: timedelta) -> datetime:
    return moment - (moment - PG_EPOCH) % size


def _ceil(moment: datetime, size: timedelta) -> datetime:
    floor = _floor(moment, size)
    return floor if floor == moment else floor + size
