"""Rollups: minutes from raw samples, hours from minutes, days from hours.

Each run claims due buckets from ``metrics_pendingrollup`` (SKIP LOCKED, so runs
may overlap), recomputes them whole and upserts: running twice gives the same
rows, and a minute marked again by late samples is simply rolled again. A rolled
bucket marks its enclosing hour (or day) as due.
"""

from datetime import datetime, timedelta

from django.db import connection, transaction

from apps.metrics.models import Resolution
from apps.metrics.sketch import bucket_code_sql, bucket_key_from_code_sql

SIZE = {
    Resolution.MINUTE: timedelta(minutes=1),
    Resolution.HOUR: timedelta(hours=1),
    Resolution.DAY: timedelta(days=1),
}
PARENT = {Resolution.MINUTE: Resolution.HOUR, Resolution.HOUR: Resolution.DAY}
SOURCE = {Resolution.HOUR: Resolution.MINUTE, Resolution.DAY: Resolution.HOUR}

CLAIM_SQL = """
DELETE FROM metrics_pendingrollup WHERE id IN (
    SELECT id FROM metrics_pendingrollup
    WHERE resolution = %s AND bucket_start <= %s
    ORDER BY bucket_start LIMIT %s FOR UPDATE SKIP LOCKED
) RETURNING bucket_start
"""
UPSERT = """
INSERT INTO metrics_rollup
    (resolution, series_id, bucket_start, count, sum, min, max, sketch, rolled_at)
SELECT %(resolution)s, a.series_id, a.b, a.n, a.s, a.lo, a.hi, k.sketch, now()
FROM a JOIN (
    SELECT series_id, b, jsonb_object_agg(key, c) AS sketch FROM k GROUP BY 1, 2
) k USING (series_id, b)
ON CONFLICT (resolution, series_id, bucket_start) DO UPDATE SET
    count = EXCLUDED.count, sum = EXCLUDED.sum, min = EXCLUDED.min,
    max = EXCLUDED.max, sketch = EXCLUDED.sketch, rolled_at = EXCLUDED.rolled_at
"""
# One pass over the raw rows of one run of consecutive minutes (a range scan, no
# per-row list test): count, sum, min and max per (series, minute, bucket code),
# then one row per (series, minute) merged from its buckets, the text keys built
# last. date_bin on timestamptz is integer arithmetic; date_trunc with a time
# zone converts every row.
MINUTE_SQL = f"""
WITH k AS (
    SELECT series_id, date_bin('1 minute', at, '2000-01-01 00:00+00') AS b,
           {bucket_code_sql("value")} AS code, count(*) AS c, sum(value) AS s,
           min(value) AS lo, max(value) AS hi
    FROM metrics_sample
    WHERE at >= %(low)s AND at < %(high)s
    GROUP BY 1, 2, 3
)
INSERT INTO metrics_rollup
    (resolution, series_id, bucket_start, count, sum, min, max, sketch, rolled_at)
SELECT %(resolution)s, series_id, b, sum(c), sum(s), min(lo), max(hi),
       jsonb_object_agg({bucket_key_from_code_sql("code")}, c), now()
FROM k GROUP BY series_id, b
ON CONFLICT (resolution, series_id, bucket_start) DO UPDATE SET
    count = EXCLUDED.count, sum = EXCLUDED.sum, min = EXCLUDED.min,
    max = EXCLUDED.max, sketch = EXCLUDED.sketch, rolled_at = EXCLUDED.rolled_at
"""  # noqa: S608 - built from constants only
MERGE_SQL = f"""
WITH r AS (
    SELECT * FROM metrics_rollup
    WHERE resolution = %(source)s
      AND bucket_start >= %(low)s AND bucket_start < %(high)s
      AND date_trunc(%(unit)s, bucket_start, 'UTC') = ANY(%(buckets)s)
), a AS (
    SELECT series_id, date_trunc(%(unit)s, bucket_start, 'UTC') AS b,
           sum(count) AS n, sum(sum) AS s, min(min) AS lo, max(max) AS hi
    FROM r GROUP BY 1, 2
), k AS (
    SELECT series_id, date_trunc(%(unit)s, bucket_start, 'UTC') AS b,
           e.key, sum(e.value::bigint) AS c
    FROM r, jsonb_each_text(r.sketch) AS e GROUP BY 1, 2, 3
)
{UPSERT}
"""  # noqa: S608 - built from constants only
MARK_SQL = (
    "INSERT INTO metrics_pendingrollup (resolution, bucket_start) "
    "SELECT %s, unnest(%s::timestamptz[]) ON CONFLICT DO NOTHING"
)


def rollup_due(
    *, resolution: Resolution, now: datetime, grace: timedelta, limit: int = 2000
) -> int:
    """Roll every due, closed bucket of ``resolution`` (closed: it ended at least
    ``grace`` ago); the number of buckets rolled."""
    closed_before = now - SIZE[resolution] - grace
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, [resolution.value, closed_before, limit])
        buckets = sorted(row[0] for row in cursor.fetchall())
        if not buckets:
            return 0
        params = {
            "resolution": resolution.value,
            "buckets": buckets,
            "low": buckets[0],
            "high": buckets[-1] + SIZE[resolution],
        }
        if resolution is Resolution.MINUTE:
            for low, high in _runs(buckets, SIZE[resolution]):
                cursor.execute(MINUTE_SQL, {**params, "low": low, "high": high})
        else:
            source = SOURCE[resolution]
            cursor.execute(
                MERGE_SQL, {**params, "source": source.value, "unit": resolution.value}
            )
        if resolution in PARENT:
            parents = sorted({_truncate(b, PARENT[resolution]) for b in buckets})
            cursor.execute(MARK_SQL, [PARENT[resolution].value, parents])
    return len(buckets)


def _runs(buckets: list[datetime], size: timedelta) -> list[tuple[datetime, datetime]]:
    """Sorted ``buckets`` as [start, end) ranges of consecutive buckets."""
    runs = [(buckets[0], buckets[0] + size)]
    for bucket in buckets[1:]:
        low, high = runs[-1]
        if bucket == high:
            runs[-1] = (low, bucket + size)
        else:
            runs.append((bucket, bucket + size))
    return runs


def _truncate(moment: datetime, resolution: Resolution) -> datetime:
    if resolution is Resolution.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)
