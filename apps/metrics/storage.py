"""Writing raw samples: series ids, day partitions, one binary COPY per batch.

Caches (series ids, partitions known to exist) are filled only after the commit
that made their rows, so a rolled-back flush never leaves a stale entry.
"""

import struct
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import structlog
from psycopg.copy import LibpqWriter

from apps.metrics.buffer import DAY_US, MINUTE_US, Row, Samples, us_at, us_day
from apps.metrics.db import Database, raw_connection
from apps.metrics.dbmonitor import noted
from apps.metrics.partitions import partitions_create
from apps.metrics.series import (
    GENERATION_SHIFT,
    POSITION_MASK,
    Series,
    SeriesRegistry,
    canonical_tags,
    registry,
    series_hash,
    series_parts,
)

log = structlog.get_logger(__name__)

COPY_SQL = "COPY metrics_sample (series_id, at, value) FROM STDIN (FORMAT BINARY)"
# PostgreSQL's binary COPY: signature, flags, header extension length; per row
# the field count, then each field's length and big-endian value (int8 series id,
# timestamptz as int8 microseconds since 2000-01-01, float8); -1 ends the data.
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("id_length", ">i4"),
        ("series_id", ">i8"),
        ("at_length", ">i4"),
        ("at", ">i8"),
        ("value_length", ">i4"),
        ("value", ">f8"),
    ]
)
_TRAILER = struct.pack(">h", -1)
# Bytes handed to libpq before waiting for them to reach the server. Each wait
# lets the producer take the GIL for up to a switch interval (5 ms), so a batch
# goes in one piece (a few MB at most; libpq still sends as it is given data).
COPY_FLUSH_BYTES = 256 * 2**20
# Encoded rows kept between batches (their constant fields written once): a
# persister's COPY is at most 100,000 rows; a larger replay gets its own array.
_ROWS_KEPT = 131_072
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
    on any Django connection of this thread, named in settings or not. Rows go as
    binary COPY built by numpy from the batch's columns: the series ids, the time
    already in PostgreSQL's microseconds, the value. A batch whose series were
    all written before (the usual one) finds its ids with one index into a table
    by registry position; otherwise the registry names its distinct series and
    those missing from this writer's cache (keyed by the Series str) are upserted.
    """

    def __init__(
        self,
        *,
        database: Database,
        cache_max: int = 100_000,
        numbering: SeriesRegistry = registry,
    ) -> None:
        self.database = database
        self.numbering = numbering
        self.cache_max = cache_max
        self._ids: dict[Series, int] = {}
        # Database ids by position in registry generation ``_generation`` (0:
        # not written yet).
        self._generation = -1
        self._id_table = np.zeros(0, dtype=np.int64)
        self._rows = _encoded_rows(0)
        self._days: set[date] = set()
        self.unresolved = 0

    def write(self, samples: Samples | Sequence[Row]) -> None:
        """Land every sample (a batch, or ``(series, at_us, value)`` rows) in one
        transaction, or raise and land none.

        Samples whose series no longer resolve (see ``series``) are left out and
        counted in ``unresolved``."""
        if not isinstance(samples, Samples):
            samples = Samples.from_rows(samples, self.numbering)
        self.write_stream([samples])

    def write_stream(self, batches: Iterable[Samples]) -> Samples | None:
        """``write`` the first of ``batches``, then in the same COPY each next one
        the iterator yields while its series were all written before and its
        days have partitions; return the first that did not (unwritten: the
        caller keeps it), None when all went in.

        One transaction for all, or raise and land none. Streaming lets the
        server take each batch while the next one is being recorded."""
        batches = iter(batches)
        samples = next(batches)
        generation = self.numbering.generation
        ids, lost = self._known_ids(samples.numbers, generation), 0
        if ids is None:
            resolves, distinct, positions = self.numbering.lookup(samples.numbers)
            if not resolves.all():
                lost = len(samples) - int(resolves.sum())
                samples = samples.select(resolves)
        if not len(samples):
            self._lost(lost)
            return None
        minutes = set(_minutes(samples.at_us))
        self._ensure_partitions(_days(minutes))
        connection = raw_connection(self.database())
        by_series, first, refused = None, samples, None
        with connection.transaction(), connection.cursor() as cursor:
            if ids is None:
                by_series = self._series_ids(cursor, set(distinct))
                ids = np.array([by_series[s] for s in distinct], np.int64)[positions]
            writer = LibpqWriter(cursor, flush_threshold=COPY_FLUSH_BYTES)
            with noted(COPY_SQL), cursor.copy(COPY_SQL, writer=writer) as copy:
                copy.write(_HEADER)
                copy.write(self._encode(ids, samples).data)
                for samples in batches:
                    known = self._known_ids(samples.numbers, generation)
                    more = set(_minutes(samples.at_us))
                    if known is None or not _days(more) <= self._days:
                        refused = samples
                        break
                    copy.write(self._encode(known, samples).data)
                    minutes |= more
                copy.write(_TRAILER)
            starts = [us_at(m * MINUTE_US) for m in sorted(minutes)]
            with noted(PENDING_SQL):
                cursor.execute(PENDING_SQL, [starts])
        # Counted once landed: a failed attempt's samples come back, and are
        # looked at again.
        self._lost(lost)
        if by_series is not None:
            self._remember(by_series, first.numbers, ids, generation)
        return refused

    def _lost(self, samples: int) -> None:
        if samples:
            self.unresolved += samples
            log.warning("metrics.series_unresolved", samples=samples)

    def _known_ids(
        self, numbers: npt.NDArray[np.int64], generation: int
    ) -> npt.NDArray[np.int64] | None:
        """The database ids of ``numbers`` when all are in the table, else None."""
        if generation != self._generation or not len(numbers):
            return None
        base = generation << GENERATION_SHIFT
        if numbers.min() < base or numbers.max() >= base + len(self._id_table):
            return None
        ids = self._id_table[numbers - base]
        return ids if ids.min() > 0 else None

    def _remember(
        self,
        by_series: dict[Series, int],
        numbers: npt.NDArray[np.int64],
        ids: npt.NDArray[np.int64],
        generation: int,
    ) -> None:
        if len(self._ids) + len(by_series) > self.cache_max:
            self._ids.clear()
        self._ids.update(by_series)
        if generation != self._generation:
            self._generation, self._id_table = generation, np.zeros(0, np.int64)
        current = (numbers >> GENERATION_SHIFT) == generation
        positions = numbers[current] & POSITION_MASK
        if not len(positions):
            return
        size = int(positions.max()) + 1
        if size > len(self._id_table):
            grown = np.zeros(max(size, 2 * len(self._id_table)), np.int64)
            grown[: len(self._id_table)] = self._id_table
            self._id_table = grown
        self._id_table[positions] = ids[current]

    def _encode(
        self, ids: npt.NDArray[np.int64], samples: Samples
    ) -> npt.NDArray[np.void]:
        size = len(samples)
        if size > _ROWS_KEPT:
            rows = _encoded_rows(size)
        else:
            if size > len(self._rows):
                self._rows = _encoded_rows(
                    min(max(size, 2 * len(self._rows)), _ROWS_KEPT)
                )
            rows = self._rows[:size]
        rows["series_id"] = ids
        rows["at"] = samples.at_us
        rows["value"] = samples.values
        return rows

    def _ensure_partitions(self, days: set[date]) -> None:
        missing = days - self._days
        if missing:
            partitions_create(days=missing, database=self.database())
            self._days |= missing

    def _series_ids(
        self, cursor: psycopg.Cursor[Any], series: set[Series]
    ) -> dict[Series, int]:
        known = self._ids
        ids = {s: known[s] for s in series if s in known}
        unknown = series - ids.keys()
        if unknown:
            ids.update(_series_upsert(cursor, unknown))
        return ids


def _series_upsert(
    cursor: psycopg.Cursor[Any], series: set[Series]
) -> dict[Series, int]:
    ordered = sorted(series)  # one lock order
    parts = [series_parts(s) for s in ordered]
    names = [name for name, _ in parts]
    hashes = [series_hash(tags) for _, tags in parts]
    tags_json = [canonical_tags(tags) for _, tags in parts]
    with noted(SERIES_INSERT_SQL):
        cursor.execute(SERIES_INSERT_SQL, [names, tags_json, hashes])
    with noted(SERIES_SELECT_SQL):
        cursor.execute(SERIES_SELECT_SQL, [names, hashes])
    pks = {(name, digest): pk for pk, name, digest in cursor.fetchall()}
    return {
        s: pks[(name, digest)]
        for s, name, digest in zip(ordered, names, hashes, strict=True)
    }


def _encoded_rows(size: int) -> npt.NDArray[np.void]:
    """``size`` binary COPY rows with their field count and lengths written."""
    rows = np.empty(size, dtype=_ROW)
    rows["fields"] = 3
    rows["id_length"] = rows["at_length"] = rows["value_length"] = 8
    return rows


def _days(minutes: set[int]) -> set[date]:
    """The days of ``minutes`` (each ``us // MINUTE_US``)."""
    return {us_day(m * MINUTE_US // DAY_US) for m in minutes}


def _minutes(times: npt.NDArray[np.int64]) -> list[int]:
    """The distinct minutes (``us // MINUTE_US``) of ``times``, ascending. When the
    earliest and the latest are at most one minute apart (the usual batch) those
    two are all of them, found without a division per sample."""
    low, high = int(times.min()) // MINUTE_US, int(times.max()) // MINUTE_US
    if high - low <= 1:
        return sorted({low, high})
    return np.unique(times // MINUTE_US).tolist()
