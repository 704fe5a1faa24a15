"""The query selector merges many series' rollups per step bucket: exact count, sum,
min and max, and percentiles within the sketch's stated relative accuracy."""

import math
import random
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from hypothesis import given
from hypothesis import strategies as st

from apps.metrics import seriesmerge
from apps.metrics.db import default_database
from apps.metrics.models import Resolution, Rollup, Series
from apps.metrics.rollups import rollup_due
from apps.metrics.selectors import (
    NAME_QUERY_SQL,
    NAME_ROLLUPS_SQL,
    NO_NESTED_LOOPS_SQL,
    Bucket,
    metrics_query,
    resolution_for,
    rollup_tag,
)
from apps.metrics.sketch import (
    RELATIVE_ACCURACY,
    code_quantiles,
    quantile,
    quantiles,
)
from apps.metrics.storage import SampleWriter
from tests.metrics.conftest import sample

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
SERIES = [
    {"env": "prod", "host": "a"},
    {"env": "prod", "host": "b"},
    {"env": "dev", "host": "c"},
]


def values_of(hour: int, host: str, rng: random.Random) -> list[float]:
    """Lognormal latencies, plus negatives and zeros in some hours and hosts."""
    values = [rng.lognormvariate(3, 1.5) for _ in range(40)]
    if host == "b":
        values += [-rng.lognormvariate(1, 1) for _ in range(15)]
    if hour == 2 and host == "c":
        values += [0.0] * 130  # the zero bucket holds this hour's p50 for host c
    return values


@pytest.fixture
def raw(db) -> tuple[str, list[tuple[dict[str, str], datetime, float]]]:
    """A fresh name's samples in hours 0, 2 and 3 after HOUR (hour 1 has none),
    rolled up. (The writer commits on its own connection: a name per test.)"""
    name = f"t.mq{uuid.uuid4().hex[:12]}"
    rng = random.Random(11)
    rows = []
    for hour in (0, 2, 3):
        for tags in SERIES:
            for n, value in enumerate(values_of(hour, tags["host"], rng)):
                at = HOUR + timedelta(hours=hour, minutes=n * 7 % 60, seconds=n % 50)
                rows.append((tags, at, value))
    SampleWriter(database=default_database).write(
        [sample(name, value, at=at, **tags) for tags, at, value in rows]
    )
    for resolution in (Resolution.MINUTE, Resolution.HOUR, Resolution.DAY):
        rollup_due(
            resolution=resolution, now=HOUR + timedelta(days=2), grace=timedelta(0)
        )
    return name, rows


def expected(rows, *, tags: dict[str, str], start: datetime, end: datetime, step: int):
    """The raw values of the matching series, per step bucket that has any."""
    buckets: dict[datetime, list[float]] = {}
    for sample_tags, at, value in rows:
        if start <= at < end and tags.items() <= sample_tags.items():
            index = (at - start) // timedelta(seconds=step)
            buckets.setdefault(start + index * timedelta(seconds=step), []).append(
                value
            )
    return dict(sorted(buckets.items()))


@pytest.mark.parametrize(
    ("tags", "hours", "step", "resolution"),
    [
        ({}, 4, 3600, Resolution.HOUR),
        ({"env": "prod"}, 4, 3600, Resolution.HOUR),
        ({"host": "c"}, 4, 3600, Resolution.HOUR),
        ({}, 4, 7200, Resolution.HOUR),
        ({"env": "prod", "host": "b"}, 3, 60, Resolution.MINUTE),
        ({}, 4, 600, Resolution.MINUTE),
        ({}, 48, 86400, Resolution.DAY),
    ],
)
def test_query__many_series__exact_aggregates_and_percentiles_within_accuracy(
    raw, tags, hours, step, resolution
):
    name, rows = raw
    start = HOUR.replace(hour=0) if step == 86400 else HOUR
    end = start + timedelta(hours=hours)
    want = expected(rows, tags=tags, start=start, end=end, step=step)

    got_resolution, buckets = metrics_query(
        name=name, tags=tags, start=start, end=end, step=step
    )

    assert got_resolution is resolution
    assert [b.start for b in buckets] == list(want)  # no rows for empty buckets
    for bucket, values in zip(buckets, want.values(), strict=True):
        ordered = sorted(values)
        assert (bucket.count, bucket.min, bucket.max) == (
            len(values),
            ordered[0],
            ordered[-1],
        )
        assert bucket.sum == pytest.approx(math.fsum(values), rel=1e-9, abs=1e-9)
        assert bucket.avg == pytest.approx(bucket.sum / len(values))
        for q, estimate in zip(
            (0.5, 0.95, 0.99), (bucket.p50, bucket.p95, bucket.p99), strict=True
        ):
            exact = ordered[math.floor(q * (len(ordered) - 1))]
            assert estimate is not None
            assert abs(estimate - exact) <= RELATIVE_ACCURACY * abs(exact) * (
                1 + 1e-9
            ), (bucket.start, q, estimate, exact)


def test_query__zero_bucket_holds_the_median__p50_is_exactly_zero(raw):
    _, buckets = metrics_query(
        name=raw[0],
        tags={"host": "c"},
        start=HOUR + timedelta(hours=2),
        end=HOUR + timedelta(hours=3),
        step=3600,
    )
    assert [b.p50 for b in buckets] == [0.0]


def test_query__unknown_tags__no_buckets(raw):
    _, buckets = metrics_query(
        name=raw[0],
        tags={"host": "nowhere"},
        start=HOUR,
        end=HOUR + timedelta(hours=4),
        step=3600,
    )
    assert buckets == []


sketches = st.dictionaries(
    st.sampled_from(["z"])
    | st.integers(-400, 400).map(str)
    | st.integers(-400, 400).map(lambda i: f"n{i}"),
    st.integers(0, 1000),
    max_size=60,
)


@given(
    sketch=sketches,
    qs=st.lists(st.floats(0, 1), max_size=5).map(sorted),
    bounds=st.tuples(st.floats(-1e4, 0), st.floats(0, 1e4)),
)
def test_quantiles__one_walk__same_as_quantile_one_by_one(sketch, qs, bounds):
    lowest, highest = bounds
    assert quantiles(sketch, qs, lowest=lowest, highest=highest) == [
        quantile(sketch, q, lowest=lowest, highest=highest) for q in qs
    ]


def query_all(name: str, tags: dict[str, str]) -> dict[int, list[Bucket]]:
    """The query of ``tags`` at each resolution's step and a coarser one."""
    steps = {60: 4, 600: 4, 3600: 4, 7200: 4, 86400: 48}
    return {
        step: metrics_query(
            name=name,
            tags=tags,
            start=HOUR.replace(hour=0) if step == 86400 else HOUR,
            end=HOUR + timedelta(hours=hours),
            step=step,
        )[1]
        for step, hours in steps.items()
    }


def assert_same_buckets(got: list[Bucket], want: list[Bucket]) -> None:
    """Equal, sum and avg up to the order PostgreSQL adds in."""
    assert len(got) == len(want)
    for one, other in zip(got, want, strict=True):
        assert replace(one, sum=0.0, avg=0.0) == replace(other, sum=0.0, avg=0.0)
        assert one.sum == pytest.approx(other.sum, rel=1e-12, abs=1e-9)
        assert one.avg == pytest.approx(other.avg, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("tags", [{"env": "prod"}, {"env": "dev"}])
def test_query__one_configured_tag__same_buckets_as_merging_its_series(
    raw, settings, tags
):
    assert rollup_tag(tags=tags) == f"env={tags['env']}"
    got = query_all(raw[0], tags)
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = []  # the series-merge path
    assert rollup_tag(tags=tags) is None
    want = query_all(raw[0], tags)
    assert all(want.values())
    for step, buckets in got.items():
        assert_same_buckets(buckets, want[step])


def test_query__one_configured_tag__answered_without_the_series_rollups(raw):
    name = raw[0]
    tagged = query_all(name, {"env": "prod"})
    merged = query_all(name, {"env": "prod", "host": "a"})  # two pairs: series
    one_series = query_all(name, {"host": "a"})  # host is not configured
    assert merged[3600]
    assert one_series[3600] == merged[3600]

    Rollup.objects.filter(series__name=name).delete()

    assert query_all(name, {"env": "prod"}) == tagged
    assert query_all(name, {"env": "prod", "host": "a"})[3600] == []
    assert query_all(name, {"host": "a"})[3600] == []


@pytest.mark.parametrize(
    ("tags", "expected_tag"),
    [
        ({}, ""),
        ({"env": "prod"}, "env=prod"),
        ({"queue": "a=b"}, "queue=a=b"),
        ({"host": "a"}, None),
        ({"env": "prod", "service": "api"}, None),
    ],
)
def test_rollup_tag__filter__the_name_or_tag_rollup_or_none(tags, expected_tag):
    assert rollup_tag(tags=tags) == expected_tag


def blocks(statement: str, params: dict, *, nested_loops: bool = True) -> int:
    """Shared buffers ``statement`` reads, in a transaction of its own as
    metrics_query runs it (without nested loops for the name query)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if not nested_loops:
            cursor.execute(NO_NESTED_LOOPS_SQL)
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params)
        plan = cursor.fetchone()[0][0]["Plan"]
    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]


def minute_params(name: str, **extra) -> dict:
    return {
        "name": name,
        "resolution": Resolution.MINUTE.value,
        "start": HOUR,
        "end": HOUR + timedelta(hours=4),
        "step": timedelta(minutes=1),
        **extra,
    }


def test_query__name_rollups_fresh__scans_them_a_few_times(raw):
    # Rollups written moments ago (the planner's statistics think them few): the
    # merge must not be re-run per bucket. It once read 14M buffers for ~400
    # rollups (~14,000 times one scan of them), minutes per query.
    params = minute_params(raw[0], tag="")
    one_scan = f"SELECT count(*) FROM ({NAME_ROLLUPS_SQL}) r"  # noqa: S608
    assert blocks(one_scan, params) > 0
    # It scans them three times (aggregates, buckets to merge, sketches).
    assert blocks(NAME_QUERY_SQL, params, nested_loops=False) < 10 * blocks(
        one_scan, params
    )


def test_series_merge__fresh_rollups__reads_each_series_rollups_once(raw):
    # One index range scan per series, whatever the planner thinks of them.
    series = list(
        Series.objects.filter(name=raw[0], tags__contains={"env": "prod"}).values_list(
            "id", flat=True
        )
    )
    params = minute_params(raw[0], series=series)
    one_scan = (
        "SELECT count(*) FROM metrics_rollup WHERE series_id = ANY(%(series)s) "
        "AND resolution = %(resolution)s "
        "AND bucket_start >= %(start)s AND bucket_start < %(end)s"
    )
    assert len(series) == 2
    assert blocks(one_scan, params) > 0
    assert blocks(seriesmerge.READ_SQL, params) < 3 * blocks(one_scan, params)


def merged_in_python(
    name: str, tags: dict[str, str], start: datetime, end: datetime, step: int
) -> list[Bucket]:
    """The step buckets of the matching series' rollups in [start, end), merged
    one rollup at a time in Python, as the SQL merge did before numpy."""
    width = timedelta(seconds=step)
    resolution = resolution_for(step=step)
    found: dict[datetime, list[Rollup]] = {}
    for rollup in Rollup.objects.filter(
        series__name=name,
        series__tags__contains=tags,
        resolution=resolution,
        bucket_start__gte=start,
        bucket_start__lt=end,
    ):
        at = start + (rollup.bucket_start - start) // width * width
        found.setdefault(at, []).append(rollup)
    buckets = []
    for at, rollups in sorted(found.items()):
        sketch: Counter[int] = Counter()
        for rollup in rollups:
            sketch.update(
                dict(zip(rollup.sketch_keys, rollup.sketch_counts, strict=True))
            )
        codes = sorted(sketch)
        count, total = sum(r.count for r in rollups), sum(r.sum for r in rollups)
        low, high = min(r.min for r in rollups), max(r.max for r in rollups)
        percentiles = code_quantiles(
            codes,
            [sketch[c] for c in codes],
            (0.5, 0.95, 0.99),
            lowest=low,
            highest=high,
        )
        buckets.append(Bucket(at, count, total, low, high, total / count, *percentiles))
    return buckets


@pytest.mark.parametrize(
    ("tags", "offset", "hours", "step"),
    [
        # Hour 1 has no samples: no bucket for it, at either resolution.
        ({"env": "prod", "host": "b"}, timedelta(0), 4, 3600),
        ({"env": "prod", "host": "b"}, timedelta(0), 4, 600),
        ({"host": "a"}, timedelta(0), 4, 60),  # one series, its rollups as they are
        ({"host": "b"}, timedelta(0), 4, 1200),  # negative values
        ({"host": "c"}, timedelta(0), 4, 3600),  # the zero bucket holds the p50
        # Buckets straddling the window's start and end, off the rollups' grid.
        ({"env": "prod", "host": "a"}, timedelta(minutes=7, seconds=30), 3, 120),
        ({"env": "prod", "host": "b"}, timedelta(minutes=30), 3, 7200),
        ({"env": "dev", "host": "c"}, timedelta(minutes=90), 2, 3600),
    ],
)
def test_query__series_merge__same_buckets_as_merging_rollup_by_rollup(
    raw, settings, tags, offset, hours, step
):
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = []
    start = HOUR + offset
    end = start + timedelta(hours=hours)

    _, got = metrics_query(name=raw[0], tags=tags, start=start, end=end, step=step)

    want = merged_in_python(raw[0], tags, start, end, step)
    assert want
    assert all(b.start.utcoffset() == timedelta(0) for b in got)
    assert_same_buckets(got, want)


def test_query__series_merge_in_several_reads__same_buckets_as_in_one(
    raw, settings, monkeypatch
):
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = []  # env=prod: two series merged
    monkeypatch.setattr(seriesmerge, "ROLLUPS_PER_READ", 10**6)
    whole = query_all(raw[0], {"env": "prod"})
    monkeypatch.setattr(seriesmerge, "ROLLUPS_PER_READ", 1)  # a read per series

    pieces = query_all(raw[0], {"env": "prod"})

    assert all(whole.values())
    for step, buckets in whole.items():
        assert_same_buckets(pieces[step], buckets)


def test_query__matching_series_without_rollups_in_the_window__no_buckets(raw):
    _, buckets = metrics_query(
        name=raw[0],
        tags={"env": "prod", "host": "a"},
        start=HOUR - timedelta(days=3),
        end=HOUR - timedelta(days=2),
        step=3600,
    )
    assert buckets == []
