"""Minute rollups computed in the rollup worker with numpy, from raw samples.

A read fetches the raw samples of some consecutive minutes, one row per series:
its id, name and tags and two binary arrays, its samples' times and values (a
hash aggregate on the series id; the join to ``metrics_series`` after it skips
the samples of a deleted series, since raw rows carry no foreign key). numpy
then computes, per (series, minute) and per (name, tag, minute), the count, sum,
min, max and sketch (bucket codes ascending, their counts; ``sketch.bucket_codes``
buckets every value as ``sketch.bucket_code`` does), and one upsert per table
writes them from flat binary arrays (``unnest``; each row's sketch is a slice of
the flat codes and counts). So PostgreSQL scans and writes, and the counting per
bucket, most of the SQL statements' 0.9-1.1 s of backend CPU per 1M samples, runs
in the worker, which scales out. Reads hold about ``ROWS_PER_READ`` samples each, at the
rate of the read before (the first reads one minute), at most an hour. They run
in psycopg's pipeline mode: PostgreSQL reads the next piece and writes the last
while numpy computes this one.
"""

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from apps.metrics.buffer import MINUTE_US
from apps.metrics.dbmonitor import Pipelined, pipelined
from apps.metrics.pgarrays import (
    TIMESTAMPTZ_OID,
    BinaryArray,
    array_cursor,
    array_length,
    array_values,
    binary_array,
)
from apps.metrics.sketch import CODE_OFFSET, bucket_codes

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
MINUTE = timedelta(minutes=1)
# Samples per read: the worker peaked at 86 MB with pieces of 500k (~170 bytes per
# sample: the raw arrays, times, values, codes, group numbers, the counted sketch
# entries, and the next piece arriving), PostgreSQL holds ~20-40 per sample in its
# hash aggregate (work_mem 64 MB).
ROWS_PER_READ = 500_000
MINUTES_PER_READ = 60

READ_SQL = """
SELECT s.id, s.name, s.tags::text, r.ats, r.vals
FROM (
    SELECT series_id, array_agg(at) AS ats, array_agg(value) AS vals
    FROM metrics_sample WHERE at >= %s AND at < %s GROUP BY series_id
) r JOIN metrics_series s ON s.id = r.series_id
"""
_ROWS = """
SELECT %(resolution)s, {owner}, r.b, r.n, r.s, r.lo, r.hi,
       (%(keys)b::int4[])[r.first:r.last], (%(counts)b::int8[])[r.first:r.last], now()
FROM unnest(%(owner)b::int8[], %(b)b::timestamptz[], %(n)b::int8[], %(s)b::float8[],
            %(lo)b::float8[], %(hi)b::float8[], %(first)b::int4[], %(last)b::int4[])
     AS r(owner, b, n, s, lo, hi, first, last)
"""


def rollup_upsert_sql(table: str, owner: str, select: str) -> str:
    """INSERT ``select``'s rows into a rollup ``table`` keyed by ``owner``
    (``series_id``, or ``name, tag``), replacing the rows already there: the
    one upsert of every resolution, so reruns and late samples replace rows."""
    return f"""
INSERT INTO {table} (resolution, {owner}, bucket_start, count, sum, min, max,
                     sketch_keys, sketch_counts, rolled_at)
{select}
ON CONFLICT (resolution, {owner}, bucket_start) DO UPDATE SET
    count = EXCLUDED.count, sum = EXCLUDED.sum, min = EXCLUDED.min,
    max = EXCLUDED.max, sketch_keys = EXCLUDED.sketch_keys,
    sketch_counts = EXCLUDED.sketch_counts, rolled_at = EXCLUDED.rolled_at
"""


SERIES_UPSERT = rollup_upsert_sql(
    "metrics_rollup", "series_id", _ROWS.format(owner="r.owner")
)
# The owners of the per-name rows: positions in the ``names``/``tags`` arrays.
NAME_UPSERT = rollup_upsert_sql(
    "metrics_namerollup",
    "name, tag",
    _ROWS.format(owner="(%(names)s::text[])[r.owner], (%(tags)s::text[])[r.owner]"),
)


@dataclass(frozen=True, slots=True)
class Rolled:
    """Rollups of some owners' minutes: row i is ``owner[i]`` over minute
    ``minute[i]`` (minutes since 2000-01-01 UTC), its sketch the codes and
    counts in ``[first[i], last[i])`` of ``codes`` and ``counts``."""

    owner: Ints
    minute: Ints
    n: Ints
    s: Floats
    lo: Floats
    hi: Floats
    codes: Ints
    counts: Ints
    first: Ints
    last: Ints

    def params(self) -> dict[str, BinaryArray]:
        """The arrays as the upserts' parameters (PostgreSQL arrays from 1)."""
        return {
            "owner": binary_array(self.owner, "i8"),
            "b": binary_array(self.minute * MINUTE_US, "i8", oid=TIMESTAMPTZ_OID),
            "n": binary_array(self.n, "i8"),
            "s": binary_array(self.s, "f8"),
            "lo": binary_array(self.lo, "f8"),
            "hi": binary_array(self.hi, "f8"),
            "keys": binary_array(self.codes, "i4"),
            "counts": binary_array(self.counts, "i8"),
            "first": binary_array(self.first + 1, "i4"),
            "last": binary_array(self.last, "i4"),
        }


# Codes as small non-negative integers in the same order: each sign's indexes
# (|index| < 2**16 for any float8) moved next to zero, then shifted by the lowest.
_BAND = 1 << 16
# Counting (group, code) pairs in a dense array of groups x codes beats sorting
# them (5-10 ms against ~60 ms per 1M) while that array is at most this long, or
# twice the pairs; the same bound for the arrays of every owner's minutes.
DENSE_MAX = 1 << 21


def sketch_entries(
    group: Ints, codes: Ints, counts: Ints | None, groups: int
) -> tuple[Ints, Ints, Ints]:
    """(group, code, count) of each distinct pair of ``group`` (< ``groups``)
    and ``codes``, ordered by group then code; ``counts`` weights the pairs (None:
    each counts one)."""
    shift = np.sign(codes) * (CODE_OFFSET - _BAND)
    compact = codes - shift
    low = int(compact.min())
    span = int(compact.max()) - low + 1
    key = group * span + (compact - low)
    if groups * span <= max(DENSE_MAX, 2 * len(codes)):
        tally = np.bincount(key, weights=counts, minlength=groups * span)
        key = np.flatnonzero(tally)
        found = np.rint(tally[key]).astype(np.int64)
    else:
        order = np.argsort(key, kind="stable")
        key = key[order]
        starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
        if counts is None:
            found = np.diff(np.append(starts, len(key)))
        else:
            found = np.add.reduceat(counts[order], starts)
        key = key[starts]
    compact = key % span + low
    return key // span, compact + np.sign(compact) * (CODE_OFFSET - _BAND), found


def _rolled(
    owner: Ints,
    minutes: tuple[int, int],
    group: Ints,
    scalars: tuple[Ints | None, Floats, Floats, Floats],
    entries: tuple[Ints | None, Ints, Ints | None],
) -> tuple[Rolled, Ints]:
    """The rollups of groups ``owner index * minute count + minute offset`` (of
    ``minutes``: first minute, count) and the groups present. ``scalars`` are
    each item of ``group``'s count (None: one), sum, min and max; ``entries``
    the sketch's items: how many each item of ``group`` has (None: one), their
    codes and counts (None: one)."""
    first_minute, count = minutes
    groups = len(owner) * count
    numbered = None
    if groups > max(DENSE_MAX, 2 * len(group)):
        # Few of the owners' minutes present (sparse series): number those only.
        numbered, group = np.unique(group, return_inverse=True)
        groups = len(numbered)
    weights, sums, lows, highs = scalars
    n = np.bincount(group, weights=weights, minlength=groups)
    s = np.bincount(group, weights=sums, minlength=groups)
    lo = np.full(groups, np.inf)
    np.minimum.at(lo, group, lows)
    hi = np.full(groups, -np.inf)
    np.maximum.at(hi, group, highs)
    present = np.flatnonzero(n)
    repeat, codes, counts = entries
    entry_group = group if repeat is None else np.repeat(group, repeat)
    entry_group, keys, key_counts = sketch_entries(entry_group, codes, counts, groups)
    where = present if numbered is None else numbered[present]
    rolled = Rolled(
        owner=owner[where // count],
        minute=where % count + first_minute,
        n=np.rint(n[present]).astype(np.int64),
        s=s[present].astype(np.float64),
        lo=lo[present],
        hi=hi[present],
        codes=keys,
        counts=key_counts,
        first=np.searchsorted(entry_group, present, "left"),
        last=np.searchsorted(entry_group, present, "right"),
    )
    return rolled, where


def _ranges(starts: Ints, lengths: Ints) -> Ints:
    """The ranges [start, start + length) one after another."""
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    return np.repeat(starts - ends + lengths, lengths) + np.arange(total)


@dataclass(frozen=True, slots=True)
class Chunk:
    """The minute rollups of one read: per series, and per name and tag (owner
    i is ``owners[i - 1]``, as the upsert indexes ``names``/``tags``)."""

    series: Rolled
    names: Rolled
    owners: list[tuple[str, str]]


def chunk_roll(rows: Sequence[tuple[Any, ...]], tag_keys: set[str]) -> Chunk:
    """The rollups of a read's ``rows`` (id, name, tags JSON, binary times and
    values), per name and per tag of ``tag_keys``."""
    times = [array_values(row[3], "i8") // MINUTE_US for row in rows]
    values = np.concatenate([array_values(row[4], "f8") for row in rows])
    minute = np.concatenate(times)
    minutes = (int(minute.min()), int(minute.max() - minute.min()) + 1)
    group = np.repeat(np.arange(len(rows)) * minutes[1], [len(t) for t in times]) + (
        minute - minutes[0]
    )
    codes = bucket_codes(values)
    series, present = _rolled(
        np.array([row[0] for row in rows], np.int64),
        minutes,
        group,
        (None, values, values, values),
        (None, codes, None),
    )
    owners, owners_of = _owners(rows, tag_keys)
    # Each series' minutes count once for each of its series' owners.
    per_series = np.array([len(mine) for mine in owners_of])
    rows_series = present // minutes[1]
    repeat = per_series[rows_series]
    row = np.repeat(np.arange(len(present)), repeat)
    starts = np.cumsum(per_series) - per_series
    owner = np.concatenate(owners_of)[_ranges(starts[rows_series], repeat)]
    group = owner * minutes[1] + (present % minutes[1])[row]
    lengths = (series.last - series.first)[row]
    entry = _ranges(series.first[row], lengths)
    names, _ = _rolled(
        np.arange(1, len(owners) + 1),
        minutes,
        group,
        (series.n[row], series.s[row], series.lo[row], series.hi[row]),
        (lengths, series.codes[entry], series.counts[entry]),
    )
    return Chunk(series=series, names=names, owners=owners)


def _owners(
    rows: Sequence[tuple[Any, ...]], tag_keys: set[str]
) -> tuple[list[tuple[str, str]], list[Ints]]:
    """The (name, tag) owners of ``rows``' series ('' for the whole name,
    "key=value" for each tag of a configured key) and each series' owners."""
    index: dict[tuple[str, str], int] = {}
    owners_of = []
    for _, name, tags, *_ in rows:
        mine = [""] + [f"{k}={v}" for k, v in json.loads(tags).items() if k in tag_keys]
        owners_of.append(
            np.array([index.setdefault((name, tag), len(index)) for tag in mine])
        )
    return list(index), owners_of


def minutes_roll(
    *,
    connection: psycopg.Connection[Any],
    runs: Sequence[tuple[datetime, datetime]],
    tag_keys: set[str],
) -> int:
    """Roll the minutes of ``runs`` ([start, end) of consecutive minutes) per
    series, per name and per tag of ``tag_keys``, in ``connection``'s current
    transaction; the number of samples read."""
    readers = (array_cursor(connection), array_cursor(connection))
    pieces = _pieces(runs)
    samples = 0
    # Pipelined: the next piece is read, and this one's rows written, by
    # PostgreSQL while this process computes; errors surface at the next fetch.
    with pipelined(connection) as pipeline:
        piece = next(pieces, None)
        if piece is not None:
            pipeline.execute(readers[0], READ_SQL, piece, binary=True)
        turn = 0
        while piece is not None:
            rows = pipeline.fetchall(readers[turn])
            read = sum(array_length(row[4]) for row in rows)
            rate = read / ((piece[1] - piece[0]) / MINUTE)
            span = max(1, min(MINUTES_PER_READ, int(ROWS_PER_READ / max(rate, 1))))
            piece = _send(pieces, span)
            if piece is not None:
                pipeline.execute(readers[1 - turn], READ_SQL, piece, binary=True)
            if rows:
                _write(pipeline, connection, chunk_roll(rows, tag_keys))
            samples += read
            turn = 1 - turn
    return samples


def _pieces(
    runs: Sequence[tuple[datetime, datetime]],
) -> Generator[tuple[datetime, datetime], int, None]:
    """Pieces [start, end) of ``runs``, each as many minutes as sent back after
    the one before (the first: one)."""
    span = 1
    for low, high in runs:
        while low < high:
            end = min(high, low + span * MINUTE)
            span = yield low, end
            low = end


def _send(
    pieces: Generator[tuple[datetime, datetime], int, None], span: int
) -> tuple[datetime, datetime] | None:
    try:
        return pieces.send(span)
    except StopIteration:
        return None


def _write(
    pipeline: Pipelined, connection: psycopg.Connection[Any], chunk: Chunk
) -> None:
    # A cursor per statement: the pipeline tells each one's result by its cursor.
    resolution = {"resolution": "minute"}
    pipeline.execute(
        array_cursor(connection),
        SERIES_UPSERT,
        {**resolution, **chunk.series.params()},
    )
    pipeline.execute(
        array_cursor(connection),
        NAME_UPSERT,
        {
            **resolution,
            **chunk.names.params(),
            "names": [name for name, _ in chunk.owners],
            "tags": [tag for _, tag in chunk.owners],
        },
    )
