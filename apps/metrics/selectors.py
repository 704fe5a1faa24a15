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
from apps.metrics.sketch import quantile, quantiles

MAX_BUCKETS = 10_000
# The rollups of the query: the series of the name whose tags contain the filter,
# one resolution, [start, end); "b" is the step bucket each rollup falls in.
ROLLUPS_SQL = """
SELECT date_bin(%(step)s, r.bucket_start, %(start)s) AS b, r.*
FROM metrics_rollup r JOIN metrics_series s ON s.id = r.series_id
WHERE s.name = %(name)s AND s.tags @> %(tags)s::jsonb
  AND r.resolution = %(resolution)s
  AND r.bucket_start >= %(start)s AND r.bucket_start < %(end)s
"""
# Two scans of the rollups, each inlined (no CTE read twice, which would copy
# every sketch into a work table): the plain aggregates without touching the
# sketches, and the sketches merged per step bucket into one array of keys and
# one of summed counts. Python then only reads one merged sketch per step bucket.
QUERY_SQL = f"""
WITH a AS (
    SELECT b, sum(count)::bigint AS n, sum(sum) AS s, min(min) AS lo, max(max) AS hi
    FROM ({ROLLUPS_SQL}) r GROUP BY b
), k AS (
    SELECT b, array_agg(key) AS keys, array_agg(c) AS counts FROM (
        SELECT r.b, e.key, sum(e.value::bigint)::bigint AS c
        FROM ({ROLLUPS_SQL}) r, jsonb_each_text(r.sketch) AS e GROUP BY 1, 2
    ) merged GROUP BY b
)
SELECT a.b, a.n, a.s, a.lo, a.hi, k.keys, k.counts FROM a JOIN k USING (b)
ORDER BY a.b
"""  # noqa: S608 - built from constants only


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
        cursor.execute(QUERY_SQL, params)
        return resolution, [_bucket(*row) for row in cursor.fetchall()]


def _bucket(
    start: datetime,
    count: int,
    total: float,
    low: float,
    high: float,
    keys: list[str],
    counts: list[int],
) -> Bucket:
    sketch = dict(zip(keys, counts, strict=True))
    p50, p95, p99 = quantiles(sketch, (0.5, 0.95, 0.99), lowest=low, highest=high)
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
