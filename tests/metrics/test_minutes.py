"""Minute rollups in numpy: the same bucket codes as ``sketch.bucket_code`` and the
same rows as the SQL minute statements they replaced (kept here as the reference)."""

import json
import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection
from psycopg.errors import DataError

from apps.metrics import minutes
from apps.metrics.buffer import MINUTE_US
from apps.metrics.db import default_database
from apps.metrics.models import NameRollup, PendingRollup, Resolution, Rollup
from apps.metrics.pgarrays import TIMESTAMPTZ_OID, binary_array
from apps.metrics.rollups import rollup_due
from apps.metrics.sketch import (
    CODE_OFFSET,
    GAMMA,
    LN_GAMMA,
    MIN_INDEXABLE,
    bucket_code,
    bucket_codes,
)
from apps.metrics.storage import SampleWriter
from tests.metrics.conftest import sample

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
LATER = HOUR + timedelta(hours=2)
# Next to a power of gamma, where numpy's own log (SIMD, an ulp off libm's now
# and then) put each of these in the neighbouring bucket on the machine these
# tests were written on (numpy 2.4, AVX-512).
NUMPY_LOG_MISSES = [
    1.2120113842591075e27,
    1.5176635947293917e41,
    3.267817332442859e110,
    1.3424901460544123e58,
    3.0333575644899535e44,
    4.591164123638276e110,
    4.603309261724829e93,
    4.123648909850362e97,
    4.091096067386444e148,
]


def edge_values() -> np.ndarray:
    """Powers of gamma and the floats either side, tiny values around
    MIN_INDEXABLE, zeros, extremes, small integers; each also negated."""
    powers = GAMMA ** np.arange(-1036.0, 35_488.0)  # 1e-9 to the largest float
    tiny = np.array([MIN_INDEXABLE, 5e-324, 1e-300, 1e-10, 0.0, 1.0, 1.5e308])
    near = np.concatenate([powers, tiny])
    values = np.concatenate(
        [
            near,
            np.nextafter(near, np.inf),
            np.nextafter(near, 0),
            np.arange(1.0, 1001.0),
            NUMPY_LOG_MISSES,
            [np.finfo(np.float64).max],
        ]
    )
    return np.concatenate([values, -values])


def test_bucket_codes__edge_values__equal_bucket_code():
    values = edge_values()

    codes = bucket_codes(values)

    want = [bucket_code(value) for value in values.tolist()]
    assert codes.tolist() == want
    # The edges are there: zero, both signs, and the ends of the index range.
    assert {0, CODE_OFFSET, -CODE_OFFSET} <= set(want)
    assert min(want) < -(CODE_OFFSET + 35_000)
    assert max(want) > CODE_OFFSET + 35_000


def test_bucket_codes__a_million_lognormal_values__equal_bucket_code():
    values = np.random.default_rng(7).lognormal(3, 4, 1_000_000)
    values[::3] *= -1

    assert bucket_codes(values).tolist() == [bucket_code(v) for v in values.tolist()]


# The rule the minute statements computed in SQL (sketch.bucket_code_sql, as it
# was): PostgreSQL's ln is the C library's log, as math.log is, so rollups rolled
# before and after the move have the same buckets on the same machine.
def sql_code(column: str) -> str:
    return (
        f"CASE WHEN abs({column}) >= {MIN_INDEXABLE!r} THEN sign({column})::int * "
        f"(ceil(ln(abs({column})) / {LN_GAMMA!r})::int + {CODE_OFFSET}) ELSE 0 END"
    )


@pytest.mark.django_db
def test_bucket_codes__edge_values__equal_the_former_sql_codes():
    values = edge_values()[::7].tolist() + NUMPY_LOG_MISSES
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {sql_code('v')} FROM unnest(%s::float8[]) WITH ORDINALITY AS t(v, i) "  # noqa: S608 - a constant
            "ORDER BY i",
            [values],
        )
        sql = [row[0] for row in cursor.fetchall()]

    assert bucket_codes(np.array(values)).tolist() == sql


def counted(groups, codes, counts):
    tally = Counter()
    for group, code, count in zip(groups, codes, counts, strict=True):
        tally[(group, code)] += count
    return sorted((g, c, n) for (g, c), n in tally.items())


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dense_max", [minutes.DENSE_MAX, 0])
def test_sketch_entries__dense_or_sorted__each_pair_counted_in_order(
    monkeypatch, weighted, dense_max
):
    # dense_max 0: the sorted path, taken when groups x codes is large.
    monkeypatch.setattr(minutes, "DENSE_MAX", dense_max)
    rng = np.random.default_rng(3)
    groups = 40
    group = rng.integers(0, groups, 5000)
    codes = bucket_codes(rng.choice([-1, 0, 1], 5000) * rng.lognormal(0, 3, 5000))
    counts = rng.integers(1, 9, 5000) if weighted else None

    got = minutes.sketch_entries(group, codes, counts, groups)

    ones = np.ones(5000, np.int64) if counts is None else counts
    want = counted(group.tolist(), codes.tolist(), ones.tolist())
    assert list(zip(*(a.tolist() for a in got), strict=True)) == want


def read_rows(rng: np.random.Generator, series: int, minutes: int) -> list[tuple]:
    """Rows as a read gives them: each series' samples in a few of ``minutes``."""
    rows = []
    for sid in range(1, series + 1):
        size = int(rng.integers(1, 4))
        at = (10_000 + rng.integers(0, minutes, size)) * MINUTE_US + sid
        values = rng.lognormal(1, 2, size) * rng.choice([-1, 1], size)
        tags = json.dumps({"env": f"e{sid % 3}", "host": f"h{sid}"})
        rows.append(
            (
                sid,
                f"t.sparse{sid % 4}",
                tags,
                binary_array(at, "i8", oid=TIMESTAMPTZ_OID),
                binary_array(values, "f8"),
            )
        )
    return rows


def test_chunk_roll__sparse_series__numbered_groups_same_rollups(monkeypatch):
    rows = read_rows(np.random.default_rng(5), series=300, minutes=60)
    dense = minutes.chunk_roll(rows, {"env"})

    # Every owner's minutes numbered, every sketch sorted: the sparse paths.
    monkeypatch.setattr(minutes, "DENSE_MAX", 0)
    sparse = minutes.chunk_roll(rows, {"env"})

    assert sparse.owners == dense.owners
    for got, want in ((sparse.series, dense.series), (sparse.names, dense.names)):
        for field in minutes.Rolled.__slots__:
            assert getattr(got, field).tolist() == getattr(want, field).tolist()
    # Each sample once in its name's whole-name rollups, and once in its tag's.
    for tagged in (False, True):
        owners = [
            i + 1 for i, (_, tag) in enumerate(dense.owners) if bool(tag) == tagged
        ]
        of_owners = np.isin(dense.names.owner, owners)
        assert dense.names.n[of_owners].sum() == dense.series.n.sum() == 576


# The SQL minute statements the numpy path replaced (rollups.MINUTE_SQL and
# NAME_MINUTE_SQL as they were, limited to one name): the reference for the rows
# it writes.
OLD_MINUTE_SQL = f"""
INSERT INTO metrics_rollup (resolution, series_id, bucket_start, count, sum, min, max,
                            sketch_keys, sketch_counts, rolled_at)
SELECT 'minute', m.series_id, m.b, m.n, m.s, m.lo, m.hi, k.keys, k.counts, now()
FROM (
    SELECT series_id, date_bin('1 minute', at, '2000-01-01 00:00+00') AS b,
           count(*) AS n, sum(value) AS s, min(value) AS lo, max(value) AS hi,
           array_agg({sql_code("value")}) AS codes
    FROM metrics_sample WHERE at >= %(low)s AND at < %(high)s GROUP BY 1, 2
) m JOIN metrics_series s ON s.id = m.series_id AND s.name = %(name)s, LATERAL (
    SELECT array_agg(code ORDER BY code) AS keys, array_agg(c ORDER BY code) AS counts
    FROM (SELECT code, count(*) AS c FROM unnest(m.codes) AS code GROUP BY code) g
) k
"""  # noqa: S608 - constants only
OLD_NAME_MINUTE_SQL = """
INSERT INTO metrics_namerollup (resolution, name, tag, bucket_start, count, sum, min,
                                max, sketch_keys, sketch_counts, rolled_at)
SELECT 'minute', a.owner, a.tag, a.b, a.n, a.s, a.lo, a.hi, k.keys, k.counts, now()
FROM (
    SELECT owner, tag, b, sum(count)::bigint AS n, sum(sum) AS s, min(min) AS lo,
           max(max) AS hi, array_agg(id) AS ids
    FROM (
        SELECT r.id, s.name AS owner, t.tag, r.bucket_start AS b, count, sum, min, max
        FROM metrics_rollup r JOIN metrics_series s ON s.id = r.series_id,
        LATERAL (
            SELECT '' AS tag
            UNION ALL
            SELECT key || '=' || value FROM jsonb_each_text(s.tags)
            WHERE key = ANY(%(tag_keys)s::text[])
        ) t
        WHERE r.resolution = 'minute' AND s.name = %(name)s
          AND r.bucket_start >= %(low)s AND r.bucket_start < %(high)s
    ) r GROUP BY owner, tag, b
) a, LATERAL (
    SELECT array_agg(key ORDER BY key) AS keys, array_agg(c ORDER BY key) AS counts
    FROM (
        SELECT e.key, sum(e.c)::bigint AS c
        FROM metrics_rollup x, unnest(x.sketch_keys, x.sketch_counts) AS e(key, c)
        WHERE x.id = ANY(a.ids)
        GROUP BY e.key
    ) g
) k
"""


def mixed_samples(name: str) -> list:
    """Five series (tags with none, one or two configured keys) over 7 minutes:
    lognormal values, negatives, zeros, tiny and huge ones, powers of gamma."""
    rng = random.Random(11)
    tag_sets = [
        {"env": "prod", "host": "a"},
        {"env": "prod", "host": "b"},
        {"env": "dev", "region": "eu", "host": "c"},
        {"host": "d"},
        {"region": "eu", "host": "e"},
    ]
    specials = [0.0, -0.0, 1e-12, -3e-10, 1e300, -1e-300, GAMMA**40, -(GAMMA**-7)]
    rows = []
    for n in range(1400):
        tags = tag_sets[n % 5]
        value = rng.lognormvariate(2, 3) * rng.choice([1, 1, 1, -1])
        if n % 23 == 0:
            value = specials[n // 23 % len(specials)]
        at = HOUR + timedelta(seconds=n * 0.3, microseconds=n)
        rows.append(sample(name, value, at=at, **tags))
    return rows


def rollup_rows(name: str) -> tuple[list, list]:
    columns = ("count", "sum", "min", "max", "sketch_keys", "sketch_counts")
    series = Rollup.objects.filter(series__name=name, resolution="minute")
    names = NameRollup.objects.filter(name=name, resolution="minute")
    return (
        list(
            series.order_by("series_id", "bucket_start").values_list(
                "series_id", "bucket_start", *columns
            )
        ),
        list(
            names.order_by("tag", "bucket_start").values_list(
                "tag", "bucket_start", *columns
            )
        ),
    )


def same(got: list[tuple], want: list[tuple]) -> bool:
    """Equal but for ``sum`` (index 3), within float rounding: the two add in
    their own orders."""
    return len(got) == len(want) and all(
        g[:3] == w[:3] and g[4:] == w[4:] and math.isclose(g[3], w[3], rel_tol=1e-12)
        for g, w in zip(got, want, strict=True)
    )


@pytest.mark.django_db
def test_minute_rollup__mixed_values_and_tags__same_rows_as_the_former_sql(settings):
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = ["env", "region"]
    SampleWriter(database=default_database).write(mixed_samples("t.numpy"))
    rollup_due(resolution=Resolution.MINUTE, now=LATER, grace=timedelta(0))
    got = rollup_rows("t.numpy")
    Rollup.objects.filter(series__name="t.numpy").delete()
    NameRollup.objects.filter(name="t.numpy").delete()

    params = {
        "low": HOUR,
        "high": LATER,
        "tag_keys": ["env", "region"],
        "name": "t.numpy",
    }
    with connection.cursor() as cursor:
        cursor.execute(OLD_MINUTE_SQL, params)
        cursor.execute(OLD_NAME_MINUTE_SQL, params)
    want = rollup_rows("t.numpy")

    series, names = got
    assert len(series) == 5 * 7
    assert {row[0] for row in names} == {"", "env=prod", "env=dev", "region=eu"}
    assert same(series, want[0])
    assert same(names, want[1])


@pytest.mark.django_db
def test_minutes_roll__a_read_per_minute__same_rows_as_one_read(monkeypatch):
    SampleWriter(database=default_database).write(mixed_samples("t.reads"))
    rollup_due(resolution=Resolution.MINUTE, now=LATER, grace=timedelta(0))
    whole = rollup_rows("t.reads")
    monkeypatch.setattr(minutes, "ROWS_PER_READ", 1)
    reads = []
    real = minutes.chunk_roll
    monkeypatch.setattr(
        minutes, "chunk_roll", lambda rows, keys: reads.append(rows) or real(rows, keys)
    )
    for minute in range(7):
        PendingRollup.objects.create(
            resolution="minute", bucket_start=HOUR + timedelta(minutes=minute)
        )

    rollup_due(resolution=Resolution.MINUTE, now=LATER, grace=timedelta(0))

    assert len(reads) == 7
    assert same(rollup_rows("t.reads")[0], whole[0])
    assert same(rollup_rows("t.reads")[1], whole[1])


@pytest.mark.django_db
def test_minutes_roll__a_write_fails_in_the_pipeline__run_raises_minutes_stay_due(
    monkeypatch,
):
    SampleWriter(database=default_database).write(mixed_samples("t.fails"))
    # The name rows' upsert of the first piece fails; the next read is already
    # queued behind it.
    monkeypatch.setattr(minutes, "NAME_UPSERT", "SELECT 1 / 0")

    with pytest.raises(DataError, match="division by zero"):
        rollup_due(resolution=Resolution.MINUTE, now=LATER, grace=timedelta(0))

    assert PendingRollup.objects.filter(resolution="minute").count() >= 7
    assert not Rollup.objects.filter(series__name="t.fails").exists()
