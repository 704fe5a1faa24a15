"""Writing raw samples: series ids, day partitions, one COPY per batch.

Caches (series ids, partitions known to exist) are filled only after the commit
that made their rows, so a rolled-back flush never leaves a stale entry.
"""

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import psycopg

from apps.metrics.buffer import Sample
from apps.metrics.db import Database, raw_connection
from apps.metrics.partitions import partitions_create
from apps.metrics.series import SeriesKey, canonical_tags, series_hash

COPY_SQL = "COPY metrics_sample (series_id, at, value) FROM STDIN (FORMAT BINARY)"
# Every flushed minute becomes due for (re-)rolling; late samples mark it again.
PENDING_SQL = (
    "INSERT INTO metrics_pendingrollup (resolution, bucket_start) "
    "SELECT 'minute', unnest(%s::timestamptz[]) ON CONFLICT DO NOTHING"
)
SERIES_INSERT_SQL = (
    "INSERT INTO metrics_series (name, tags, tags_hash, created_at) "
    "SELECT n, t, h, now() FROM unnest(%s::text[], %s::jsonb[], %s::text[]) AS u(n, t, h) "
    "ON CONFLICT (name, tags_hash) DO NOTHING"
)
SERIES_SELECT_SQL = (
    "SELECT s.id, s.name, s.tags_hash FROM metrics_series s "
    "JOIN unnest(%s::text[], %s::text[]) AS u(n, h) ON s.name = u.n AND s.tags_hash = u.h"
)


class SampleWriter:
    """Writes batches of samples with COPY through the connection ``database()``.

    It drives psycopg directly (its own transaction, ``cursor.copy``) so it works
    on any Django connection of this thread, named in settings or not.
    """

    def __init__(self, *, database: Database, cache_max: int = 100_000) -> None:
        self.database = database
        self.cache_max = cache_max
        self._series: dict[SeriesKey, int] = {}
        self._days: set[date] = set()

    def write(self, samples: Sequence[Sample]) -> None:
        """Land every sample in one transaction, or raise and land none."""
        if not samples:
            return
        self._ensure_partitions({sample.at.date() for sample in samples})
        connection = raw_connection(self.database())
        with connection.transaction(), connection.cursor() as cursor:
            ids = self._series_ids(cursor, {(s.name, s.tags) for s in samples})
            _copy(cursor, ((ids[(s.name, s.tags)], s.at, s.value) for s in samples))
            minutes = {s.at.replace(second=0, microsecond=0) for s in samples}
            cursor.execute(PENDING_SQL, [sorted(minutes)])
        if len(self._series) + len(ids) > self.cache_max:
            self._series.clear()
        self._series.update(ids)

    def _ensure_partitions(self, days: set[date]) -> None:
        missing = days - self._days
        if missing:
            partitions_create(days=missing, database=self.database())
            self._days |= missing

    def _series_ids(
        self, cursor: psycopg.Cursor[Any], keys: set[SeriesKey]
    ) -> dict[SeriesKey, int]:
        ids = {key: self._series[key] for key in keys if key in self._series}
        unknown = sorted(keys - ids.keys())
        if unknown:
            ids.update(_series_upsert(cursor, unknown))
        return ids


def _series_upsert(
    cursor: psycopg.Cursor[Any], keys: list[SeriesKey]
) -> dict[SeriesKey, int]:
    names = [name for name, _ in keys]
    hashes = [series_hash(tags) for _, tags in keys]
    tags_json = [canonical_tags(tags) for _, tags in keys]
    cursor.execute(SERIES_INSERT_SQL, [names, tags_json, hashes])
    cursor.execute(SERIES_SELECT_SQL, [names, hashes])
    by_identity = {
        (name, digest): key
        for key, name, digest in zip(keys, names, hashes, strict=True)
    }
    return {by_identity[(name, digest)]: pk for pk, name, digest in cursor.fetchall()}


def _copy(
    cursor: psycopg.Cursor[Any], rows: Iterable[tuple[int, datetime, float]]
) -> None:
    with cursor.copy(COPY_SQL) as copy:
        copy.set_types(["int8", "timestamptz", "float8"])
        for row in rows:
            copy.write_row(row)
