"""Rollups: minutes from raw samples, hours from minutes, days from hours.

Each run claims due buckets from ``metrics_pendingrollup`` (SKIP LOCKED, so runs
may overlap), recomputes them whole and upserts: running twice gives the same
rows, and a minute marked again by late samples is simply rolled again. A rolled
bucket marks its enclosing hour (or day) as due. Each bucket is rolled per series
(``metrics_rollup``), per name, all its series merged, and per name and tag,
the series of the name carrying one tag whose key is in
``OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS`` merged (both in ``metrics_namerollup``,
``tag`` '' for the whole name, "key=value" otherwise).

Minutes are computed in this process with numpy from the raw samples, per
series, per name and per tag alike (``apps.metrics.minutes``): PostgreSQL reads
and writes, the worker counts. Hours and days are merged in SQL from the
resolution below, never from raw (``MERGE_SQL``).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from apps.metrics.db import raw_connection
from apps.metrics.minutes import minutes_roll, rollup_upsert_sql
from apps.metrics.models import Resolution
from apps.metrics.partitions import partitions_ready_for_reads

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


# For this transaction only: a minute read's hash aggregate holds its samples'
# times and values (~20-40 MB per 1M); at the default 4 MB its first form sorted
# them on disk (external merge, 14 MB).
WORK_MEM_SQL = "SET LOCAL work_mem = '64MB'"
# Minute reads are small and many (a backlog is read in ~ROWS_PER_READ pieces):
# starting two parallel workers for each cost more than the scan they share
# (0.94 against 0.66 s of PostgreSQL CPU per 1M samples, workers included).
SERIAL_SQL = "SET LOCAL max_parallel_workers_per_gather = 0"
# Rollup runs share this lock (they may overlap: claims skip each other's
# buckets); a tags backfill chunk takes it alone. Otherwise a chunk could merge
# series rollups from before a concurrent re-roll and, its upsert waiting on
# that re-roll's row, write the stale merge over the fresh per-tag row.
_LOCK_KEY = 0x726F6C6C  # "roll"
SHARED_LOCK_SQL = f"SELECT pg_advisory_xact_lock_shared({_LOCK_KEY})"
ALONE_LOCK_SQL = f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"
# More minutes due at once than this is a backlog (a first day, a replayed spill,
# rollups stopped a while): its partitions are readied for many reads first.
# Steady runs claim a minute or two and leave the partitions to autovacuum.
CATCH_UP_MINUTES = 10


def _merge(source: str, table: str, owner: str = "owner") -> str:
    """A SELECT of merged rollups from ``source``, a query of rows (id, ``owner``,
    b, count, sum, min, max) of rollup ``table``, ``owner`` being one or more
    columns ("owner" or "owner, tag"): one row per (owner, b), the sketches
    merged by adding the counts of equal codes.

    One aggregate per (owner, b) collects the ids of its rollups; a lateral then
    reads their sketches and sums counts per code, a small hash aggregate on an
    integer. Summing per (owner, b, code) over every pair in one GROUP BY sorted
    all of them (771k for 100 series' minutes), comparing the text owner of a
    name in each step: a third more CPU for the per-name minutes.
    """
    columns = ", ".join(f"a.{column.strip()}" for column in owner.split(","))
    return f"""
SELECT %(resolution)s, {columns}, a.b, a.n, a.s, a.lo, a.hi, k.keys, k.counts, now()
FROM (
    SELECT {owner}, b, sum(count)::bigint AS n, sum(sum) AS s, min(min) AS lo,
           max(max) AS hi, array_agg(id) AS ids
    FROM ({source}) r GROUP BY {owner}, b
) a, LATERAL (
    SELECT array_agg(key ORDER BY key) AS keys, array_agg(c ORDER BY key) AS counts
    FROM (
        SELECT e.key, sum(e.c)::bigint AS c
        FROM {table} x, unnest(x.sketch_keys, x.sketch_counts) AS e(key, c)
        WHERE x.id = ANY(a.ids)
        GROUP BY e.key
    ) g
) k
"""  # noqa: S608 - built from constants only


def _due(owner: str, table: str, where: str = "TRUE") -> str:
    """The rows of ``table`` (the resolution below) within the due buckets and
    ``where``; ``owner`` is the select list naming the owner column(s)."""
    return f"""
    SELECT id, {owner}, date_trunc(%(unit)s, bucket_start, 'UTC') AS b,
           count, sum, min, max
    FROM {table}
    WHERE resolution = %(source)s
      AND bucket_start >= %(low)s AND bucket_start < %(high)s
      AND date_trunc(%(unit)s, bucket_start, 'UTC') = ANY(%(buckets)s)
      AND ({where})
"""  # noqa: S608 - built from constants only


# Hours and days: the due buckets merged from the resolution below, for each
# series, each name and each (name, tag) (hours from minutes, days from hours;
# never raw). Only the tags of keys still configured: a key taken out of the
# setting stops at every resolution at once.
MERGE_SQL = [
    rollup_upsert_sql(
        "metrics_rollup",
        "series_id",
        _merge(_due("series_id AS owner", "metrics_rollup"), "metrics_rollup"),
    ),
    rollup_upsert_sql(
        "metrics_namerollup",
        "name, tag",
        _merge(
            _due(
                "name AS owner, tag",
                "metrics_namerollup",
                "tag = '' OR split_part(tag, '=', 1) = ANY(%(tag_keys)s::text[])",
            ),
            "metrics_namerollup",
            "owner, tag",
        ),
    ),
]
# A key added to the setting: the per-tag rollups of the buckets already
# rolled, merged from the series' rollups of the same resolution (hours from
# series hours, not tag minutes: the same counts, and hours outlive minutes).
TAGS_BACKFILL_SQL = rollup_upsert_sql(
    "metrics_namerollup",
    "name, tag",
    _merge(
        """
        SELECT r.id, s.name AS owner, t.key || '=' || t.value AS tag,
               r.bucket_start AS b, count, sum, min, max
        FROM metrics_rollup r JOIN metrics_series s ON s.id = r.series_id,
             jsonb_each_text(s.tags) AS t
        WHERE t.key = ANY(%(tag_keys)s::text[]) AND r.resolution = %(resolution)s
          AND r.bucket_start >= %(low)s AND r.bucket_start < %(high)s
        """,
        "metrics_rollup",
        "owner, tag",
    ),
)
BACKFILL_CHUNK = {
    Resolution.MINUTE: timedelta(hours=6),
    Resolution.HOUR: timedelta(days=7),
    Resolution.DAY: timedelta(days=366),
}
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
        cursor.execute(WORK_MEM_SQL)
        cursor.execute(CLAIM_SQL, [resolution.value, closed_before, limit])
        buckets = sorted(row[0] for row in cursor.fetchall())
        if not buckets:
            return 0
        cursor.execute(SHARED_LOCK_SQL)
        params = {
            "resolution": resolution.value,
            "tag_keys": list(settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS),
            "buckets": buckets,
            "low": buckets[0],
            "high": buckets[-1] + SIZE[resolution],
        }
        if resolution is Resolution.MINUTE:
            cursor.execute(SERIAL_SQL)
            if len(buckets) > CATCH_UP_MINUTES:
                partitions_ready_for_reads(days={b.date() for b in buckets})
            minutes_roll(
                connection=raw_connection(),
                runs=_runs(buckets, SIZE[resolution]),
                tag_keys=set(settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS),
            )
        else:
            merge = {**params, "source": SOURCE[resolution].value}
            for sql in MERGE_SQL:
                cursor.execute(sql, {**merge, "unit": resolution.value})
        if resolution in PARENT:
            parents = sorted({_truncate(b, PARENT[resolution]) for b in buckets})
            cursor.execute(MARK_SQL, [PARENT[resolution].value, parents])
    return len(buckets)


def _runs(buckets: list[datetime], size: timedelta) -> list[tuple[datetime, datetime]]:
    """Sorted ``buckets`` as [start, end) ranges of consecutive buckets (each
    read in pieces of ``minutes.ROWS_PER_READ`` samples)."""
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


def tags_backfill(*, keys: list[str]) -> dict[str, int]:
    """Write the per-tag rollups of ``keys`` for every bucket already rolled, per
    series, at each resolution, in one transaction per chunk of time; the rows
    written per resolution. Running it again rewrites the same rows."""
    written = {}
    for resolution, chunk in BACKFILL_CHUNK.items():
        written[resolution.value] = 0
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT min(bucket_start), max(bucket_start) FROM metrics_rollup "
                "WHERE resolution = %s",
                [resolution.value],
            )
            low, last = cursor.fetchone()
        while low is not None and low <= last:
            params = {"resolution": resolution.value, "tag_keys": keys, "low": low}
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(ALONE_LOCK_SQL)
                cursor.execute(WORK_MEM_SQL)
                cursor.execute(TAGS_BACKFILL_SQL, {**params, "high": low + chunk})
                written[resolution.value] += cursor.rowcount
            low += chunk
    return written
