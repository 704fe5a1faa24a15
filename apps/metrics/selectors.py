"""Every read of the metrics app: range queries over rollups, the DB query monitor."""

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import redis
from django.conf import settings
from django.db import connection

from apps.core.exceptions import ValidationFailed
from apps.metrics.dbmonitor import QueryNote, db_key
from apps.metrics.models import Resolution
from apps.metrics.rollups import SIZE
from apps.metrics.sketch import code_quantiles, quantile

MAX_BUCKETS = 10_000
# The rollups of the query over one resolution and [start, end), "b" being the
# step bucket each falls in: without a tag filter, the name's own rollups (every
# series already merged by the rollup task, one row per bucket); with one, the
# rollups of the name's series whose tags contain the filter.
NAME_ROLLUPS_SQL = """
SELECT date_bin(%(step)s, r.bucket_start, %(start)s) AS b, r.*
FROM metrics_namerollup r
WHERE r.name = %(name)s AND r.resolution = %(resolution)s
  AND r.bucket_start >= %(start)s AND r.bucket_start < %(end)s
"""
SERIES_ROLLUPS_SQL = """
SELECT date_bin(%(step)s, r.bucket_start, %(start)s) AS b, r.*
FROM metrics_rollup r JOIN metrics_series s ON s.id = r.series_id
WHERE s.name = %(name)s AND s.tags @> %(tags)s::jsonb
  AND r.resolution = %(resolution)s
  AND r.bucket_start >= %(start)s AND r.bucket_start < %(end)s
"""


def _query_sql(rollups: str) -> str:
    # The plain aggregates per step bucket, and the sketch as it is where the
    # bucket holds one rollup (min() of one array is that array): a step equal
    # to the resolution over one series or one name merges nothing. Only the
    # buckets holding several rollups are merged (counts of equal codes added,
    # codes ascending). Each scan is inlined: a CTE read twice would copy every
    # sketch into a work table. Python then reads one sketch per bucket.
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
SERIES_QUERY_SQL = _query_sql(SERIES_ROLLUPS_SQL)


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
    params: dict[str, Any] = {
        "name": name,
        "tags": _json(tags),
        "resolution": resolution.value,
        "start": start,
        "end": end,
        "step": timedelta(seconds=step),
    }
    with connection.cursor() as cursor:
        cursor.execute(SERIES_QUERY_SQL if tags else NAME_QUERY_SQL, params)
        return resolution, [_bucket(*row) for row in cursor.fetchall()]


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
