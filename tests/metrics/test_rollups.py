"""Rollups: idempotent minutes, late samples re-roll, merged hours keep accuracy;
retention drops whole partitions."""

import math
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.exceptions import ValidationFailed
from apps.metrics.db import default_database
from apps.metrics.models import (
    NameRollup,
    PendingRollup,
    Resolution,
    Rollup,
    Series,
)
from apps.metrics.partitions import (
    BRIN_SUMMARIZE_SQL,
    partition_name,
    partitions_create,
    partitions_list,
)
from apps.metrics.rollups import CATCH_UP_MINUTES, _runs, rollup_due
from apps.metrics.services import retention_apply, rollups_backfill_tags
from apps.metrics.sketch import CODE_OFFSET, RELATIVE_ACCURACY, code_quantiles
from apps.metrics.storage import SampleWriter
from tests.metrics.conftest import sample
from tests.procs import wait_until

pytestmark = pytest.mark.django_db
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
LATER = HOUR + timedelta(hours=2)


def roll_all(now: datetime = LATER) -> None:
    for resolution in (Resolution.MINUTE, Resolution.HOUR, Resolution.DAY):
        rollup_due(resolution=resolution, now=now, grace=timedelta(0))


def minute_rows(name: str) -> list[tuple]:
    return list(
        Rollup.objects.filter(series__name=name, resolution="minute")
        .order_by("bucket_start")
        .values_list(
            "bucket_start", "count", "sum", "min", "max", "sketch_keys", "sketch_counts"
        )
    )


def test_minute_rollup__run_twice__same_rows():
    writer = SampleWriter(database=default_database)
    writer.write(
        [sample("t.idem", v, at=HOUR + timedelta(seconds=v)) for v in range(1, 121)]
    )
    roll_all()
    first = minute_rows("t.idem")
    # The same minutes due again (a second run of the same work) roll to the same rows.
    for bucket_start in {row[0] for row in first}:
        PendingRollup.objects.create(resolution="minute", bucket_start=bucket_start)
    roll_all()
    assert first == minute_rows("t.idem")
    assert [(row[1], row[3], row[4]) for row in first] == [
        (59, 1, 59),
        (60, 60, 119),
        (1, 120, 120),
    ]


def test_minute_rollup__zero_tiny_and_negative_values__one_key_each():
    values = [0.0, 1e-12, -1e-12, 2.0, 2.0, -2.0]
    SampleWriter(database=default_database).write(
        [
            sample("t.signs", v, at=HOUR + timedelta(seconds=n))
            for n, v in enumerate(values)
        ]
    )
    roll_all()
    ((_, count, total, low, high, keys, counts),) = minute_rows("t.signs")
    assert (count, total, low, high) == (6, 2.0, -2.0, 2.0)
    # Codes ascend as their values do: -2 (index 35 mirrored), zero, 2.
    assert keys == [-(CODE_OFFSET + 35), 0, CODE_OFFSET + 35]
    assert counts == [1, 3, 2]


def test_minute_rollup__due_minutes_with_gaps__each_run_rolled_others_untouched():
    writer = SampleWriter(database=default_database)
    minutes = (0, 1, 5, 9)
    writer.write([sample("t.gaps", 1, at=HOUR + timedelta(minutes=m)) for m in minutes])
    roll_all()
    # A minute between the runs, written after its rollup: not due, so not rolled.
    PendingRollup.objects.all().delete()
    writer.write([sample("t.gaps", 1, at=HOUR + timedelta(minutes=3))])
    PendingRollup.objects.all().delete()
    writer.write([sample("t.gaps", 2, at=HOUR + timedelta(minutes=m)) for m in (1, 9)])
    roll_all()
    assert [(row[0], row[1], row[2]) for row in minute_rows("t.gaps")] == [
        (HOUR, 1, 1),
        (HOUR + timedelta(minutes=1), 2, 3),
        (HOUR + timedelta(minutes=5), 1, 1),
        (HOUR + timedelta(minutes=9), 2, 3),
    ]


def test_minute_rollup__late_sample__minute_and_hour_rerolled():
    writer = SampleWriter(database=default_database)
    writer.write([sample("t.late", 10, at=HOUR + timedelta(seconds=5))])
    roll_all()
    writer.write([sample("t.late", 1000, at=HOUR + timedelta(seconds=30))])
    roll_all()
    (minute,) = minute_rows("t.late")
    assert (minute[1], minute[2], minute[4]) == (2, 1010, 1000)
    hour = Rollup.objects.get(series__name="t.late", resolution="hour")
    assert (hour.count, hour.max, sum(hour.sketch_counts)) == (2, 1000, 2)


def test_minute_rollup__series_deleted_with_raw_left__other_series_still_rolled():
    writer = SampleWriter(database=default_database)
    writer.write(
        [
            sample("t.gone", 1, at=HOUR + timedelta(seconds=1), host="gone"),
            sample("t.gone", 2, at=HOUR + timedelta(seconds=2), host="kept"),
        ]
    )
    Series.objects.filter(name="t.gone", tags={"host": "gone"}).delete()
    roll_all()
    assert [row[1:3] for row in minute_rows("t.gone")] == [(1, 2)]
    ((_, count, *_),) = name_rows("t.gone", "minute")
    assert count == 1


def merged_rows(name: str, resolution: str, series=None) -> list[tuple]:
    """The name's series rollups of ``resolution`` (of ``series`` when given)
    merged in Python, per bucket."""
    merged: dict[datetime, list] = {}
    rollups = Rollup.objects.filter(series__name=name, resolution=resolution)
    if series is not None:
        rollups = rollups.filter(series__in=series)
    for row in rollups:
        n, total, low, high, counts = merged.setdefault(
            row.bucket_start, [0, 0.0, math.inf, -math.inf, Counter()]
        )
        counts.update(dict(zip(row.sketch_keys, row.sketch_counts, strict=True)))
        merged[row.bucket_start] = [
            n + row.count,
            total + row.sum,
            min(low, row.min),
            max(high, row.max),
            counts,
        ]
    return [
        (start, n, total, low, high, sorted(c), [c[k] for k in sorted(c)])
        for start, (n, total, low, high, c) in sorted(merged.items())
    ]


def name_rows(name: str, resolution: str) -> list[tuple]:
    return list(
        NameRollup.objects.filter(name=name, resolution=resolution)
        .order_by("bucket_start")
        .values_list(
            "bucket_start", "count", "sum", "min", "max", "sketch_keys", "sketch_counts"
        )
    )


def same_rows(got: list[tuple], want: list[tuple]) -> bool:
    """Equal, sums up to float rounding (PostgreSQL adds in its own order)."""
    return len(got) == len(want) and all(
        g[:2] == w[:2] and g[3:] == w[3:] and math.isclose(g[2], w[2], rel_tol=1e-12)
        for g, w in zip(got, want, strict=True)
    )


def test_name_rollup__three_series__equals_their_rollups_merged_per_bucket():
    writer = SampleWriter(database=default_database)
    writer.write(
        [
            sample(
                "t.names", (n % 97) * 1.5 - 20, at=HOUR + timedelta(seconds=n), host=h
            )
            for n in range(0, 150)
            for h in ("a", "b", "c")
            if (n + ord(h)) % 4
        ]
    )
    roll_all()
    for resolution in ("minute", "hour"):
        want = merged_rows("t.names", resolution)
        assert len(want) == (3 if resolution == "minute" else 1)
        assert same_rows(name_rows("t.names", resolution), want), resolution


def test_name_rollup__late_sample_of_one_series__name_minute_and_hour_rerolled():
    writer = SampleWriter(database=default_database)
    writer.write(
        [
            sample("t.namelate", 10, at=HOUR + timedelta(seconds=5), host="a"),
            sample("t.namelate", 20, at=HOUR + timedelta(seconds=6), host="b"),
        ]
    )
    roll_all()
    writer.write(
        [sample("t.namelate", 5000, at=HOUR + timedelta(seconds=40), host="b")]
    )
    roll_all()
    for resolution in ("minute", "hour"):
        ((_, count, total, _, high, _, counts),) = name_rows("t.namelate", resolution)
        assert (count, total, high, sum(counts)) == (3, 5030, 5000, 3)


values = st.lists(
    st.floats(min_value=1e-3, max_value=1e6)
    | st.floats(min_value=-1e4, max_value=-1e-3),
    min_size=1,
    max_size=60,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(values=values)
def test_percentile__merged_hours__within_relative_accuracy_of_exact(values):
    name = f"t.q{uuid.uuid4().hex[:12]}"
    # Spread over three hours and many minutes, so hours merge minutes and the
    # day merges hours.
    at = [
        HOUR + timedelta(minutes=7 * n % 170, seconds=n % 60)
        for n in range(len(values))
    ]
    SampleWriter(database=default_database).write(
        [sample(name, v, at=t) for v, t in zip(values, at, strict=True)]
    )
    roll_all(now=HOUR + timedelta(days=2))
    hours = Rollup.objects.filter(series__name=name, resolution="hour")
    merged: Counter[int] = Counter()
    for hour in hours:
        merged.update(dict(zip(hour.sketch_keys, hour.sketch_counts, strict=True)))
    codes = sorted(merged)
    ordered = sorted(values)
    qs = (0.0, 0.5, 0.95, 0.99, 1.0)
    estimates = code_quantiles(
        codes, [merged[c] for c in codes], qs, lowest=ordered[0], highest=ordered[-1]
    )
    for q, estimate in zip(qs, estimates, strict=True):
        exact = ordered[math.floor(q * (len(ordered) - 1))]
        assert estimate is not None
        assert abs(estimate - exact) <= RELATIVE_ACCURACY * abs(exact) * (1 + 1e-9)


def test_retention__raw_past_its_days__partition_dropped_in_pg_catalog(settings):
    settings.OPSCONSOLE_METRICS_RAW_RETENTION_DAYS = 7
    now = datetime.now(UTC)
    old, kept = (now - timedelta(days=9)).date(), (now - timedelta(days=6)).date()
    partitions_create(days=[old, kept])
    result = retention_apply(now=now)
    assert partition_name(old) in result.partitions_dropped
    assert partition_name(old) not in partitions_list()
    assert partition_name(kept) in partitions_list()


BEFORE_ARRAYS = ("metrics", "0002_roles")
ARRAYS = ("metrics", "0003_rollup_array_sketch")


def _migrate(target: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_migration_0003__jsonb_sketches__arrays_name_rollups_and_back_unchanged():
    # Given two series' JSONB sketches of one minute, written before 0003
    maps = [{"z": 3, "35": 2, "n35": 1}, {"35": 4, "-2": 5}]
    try:
        old = _migrate(BEFORE_ARRAYS)
        series = [
            old.get_model("metrics", "Series").objects.create(
                name="t.mig", tags={"host": host}, tags_hash=host
            )
            for host in ("a", "b")
        ]
        old_rollup = old.get_model("metrics", "Rollup")
        for one, sketch in zip(series, maps, strict=True):
            old_rollup.objects.create(
                resolution="minute", series_id=one.pk, bucket_start=HOUR, count=10,
                sum=1.0, min=-2.0, max=2.0, sketch=sketch,
            )  # fmt: skip

        # When 0003 runs, then is reversed
        new = _migrate(ARRAYS)
        arrays = list(
            new.get_model("metrics", "Rollup")
            .objects.order_by("series_id")
            .values_list("sketch_keys", "sketch_counts")
        )
        name = new.get_model("metrics", "NameRollup").objects.get(name="t.mig")
        back = _migrate(BEFORE_ARRAYS).get_model("metrics", "Rollup")
        reversed_maps = list(back.objects.order_by("series_id").values_list("sketch"))
    finally:
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )

    # Then the codes ascend with their counts, the name holds both, and the maps
    # come back as they were
    code = CODE_OFFSET + 35
    assert arrays == [
        ([-code, 0, code], [1, 3, 2]),
        ([CODE_OFFSET - 2, code], [5, 4]),
    ]
    assert (name.count, name.sketch_keys, name.sketch_counts) == (
        20,
        [-code, 0, CODE_OFFSET - 2, code],
        [1, 3, 5, 6],
    )
    assert reversed_maps == [(m,) for m in maps]


TAGGED = [
    {"env": "prod", "host": "a"},
    {"env": "prod", "host": "b"},
    {"env": "dev", "host": "c"},
    {"host": "d"},
]


def write_tagged(name: str, seconds: range = range(0, 150, 7)) -> None:
    """Samples of four series of ``name`` over three minutes of HOUR (and one
    minute of the next hour, so the day merges two hours)."""
    SampleWriter(database=default_database).write(
        [
            sample(name, (n % 13) * 2.5 - 5 + i, at=HOUR + timedelta(seconds=n), **tags)
            for i, tags in enumerate(TAGGED)
            for n in [*seconds, 3600 + i]
        ]
    )


def tag_rows(name: str, tag: str, resolution: str) -> list[tuple]:
    return list(
        NameRollup.objects.filter(name=name, tag=tag, resolution=resolution)
        .order_by("bucket_start")
        .values_list(
            "bucket_start", "count", "sum", "min", "max", "sketch_keys", "sketch_counts"
        )
    )


def series_merged(name: str, resolution: str, **tags: str) -> list[tuple]:
    """``merged_rows`` of the series of ``name`` carrying ``tags``."""
    kept = Series.objects.filter(name=name, tags__contains=tags)
    merged = merged_rows(name, resolution, series=kept)
    assert merged, (name, resolution, tags)
    return merged


def test_tag_rollup__configured_keys_only__name_and_each_value_rolled(settings):
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = ["env", "region"]
    write_tagged("t.tagkeys")
    roll_all(now=HOUR + timedelta(days=2))
    for resolution in ("minute", "hour", "day"):
        tags = set(
            NameRollup.objects.filter(
                name="t.tagkeys", resolution=resolution
            ).values_list("tag", flat=True)
        )
        # host is not configured; region is, but no series carries it.
        assert tags == {"", "env=prod", "env=dev"}, resolution


def test_tag_rollup__each_tag__equals_its_series_rollups_merged_per_bucket(settings):
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = ["env"]
    write_tagged("t.tagmerge")
    roll_all(now=HOUR + timedelta(days=2))
    days = len({HOUR.date(), (HOUR + timedelta(hours=1)).date()})
    for resolution, buckets in (("minute", 4), ("hour", 2), ("day", days)):
        for env in ("prod", "dev"):
            want = series_merged("t.tagmerge", resolution, env=env)
            got = tag_rows("t.tagmerge", f"env={env}", resolution)
            assert len(got) == buckets, (resolution, env)
            assert same_rows(got, want), (resolution, env)


def test_tag_rollup__late_sample_of_one_series__tag_minute_and_hour_rerolled(
    settings,
):
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = ["env"]
    writer = SampleWriter(database=default_database)
    writer.write(
        [
            sample("t.taglate", 10, at=HOUR + timedelta(seconds=5), env="p", host="a"),
            sample("t.taglate", 20, at=HOUR + timedelta(seconds=6), env="p", host="b"),
            sample("t.taglate", 30, at=HOUR + timedelta(seconds=7), env="q", host="c"),
        ]
    )
    roll_all()
    writer.write(
        [sample("t.taglate", 5000, at=HOUR + timedelta(seconds=40), env="p", host="b")]
    )
    roll_all()
    for resolution in ("minute", "hour"):
        ((_, count, total, _, high, _, counts),) = tag_rows(
            "t.taglate", "env=p", resolution
        )
        assert (count, total, high, sum(counts)) == (3, 5030, 5000, 3), resolution
        ((_, count, *_),) = tag_rows("t.taglate", "env=q", resolution)
        assert count == 1


def test_tag_rollup__key_taken_out_before_the_hour__no_hour_for_its_tags(settings):
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = ["env"]
    write_tagged("t.tagout")
    rollup_due(resolution=Resolution.MINUTE, now=LATER, grace=timedelta(0))
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = []
    roll_all(now=HOUR + timedelta(days=2))
    assert tag_rows("t.tagout", "env=prod", "minute")
    assert tag_rows("t.tagout", "env=prod", "hour") == []
    assert len(tag_rows("t.tagout", "", "hour")) == 2


@pytest.mark.parametrize(("name", "kept_days"), [("t.tagret", 29), ("t.tagrule", 1)])
def test_retention__tag_rollups_past_their_days__deleted_with_the_names(
    settings, name, kept_days
):
    # t.tagrule keeps minutes 2 days by a per-name rule, t.tagret the default 30.
    settings.OPSCONSOLE_METRICS_MINUTE_RETENTION_DAYS = 30
    settings.OPSCONSOLE_METRICS_RETENTION_RULES = [("t.tagrule", {"minute": 2})]
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for tag in ("", "env=prod"):
        for age in (31, 29, 3, 1):
            NameRollup.objects.create(
                resolution="minute", name=name, tag=tag,
                bucket_start=now - timedelta(days=age), count=1, sum=1.0, min=1.0,
                max=1.0, sketch_keys=[0], sketch_counts=[1],
            )  # fmt: skip
    retention_apply(now=now)
    kept = sorted(
        (tag, (now - start).days)
        for tag, start in NameRollup.objects.filter(name=name).values_list(
            "tag", "bucket_start"
        )
    )
    ages = [age for age in (29, 3, 1) if age <= kept_days]
    assert kept == [(tag, age) for tag in ("", "env=prod") for age in sorted(ages)]


def test_tags_backfill__key_configured_after_rolling__past_buckets_merged(settings):
    # Given buckets rolled while no tag key was configured
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = []
    write_tagged("t.tagfill")
    roll_all(now=HOUR + timedelta(days=2))
    assert len(tag_rows("t.tagfill", "", "hour")) == 2
    assert not NameRollup.objects.filter(name="t.tagfill").exclude(tag="").exists()

    # When env is configured and the past backfilled (twice: same rows)
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = ["env", "host"]
    rollups_backfill_tags(keys=["env"])
    written = rollups_backfill_tags(keys=["env"])

    # Then each env value's rollups are its series merged, at every resolution
    assert written["minute"] >= 8
    assert written["day"] >= 2
    for resolution in ("minute", "hour", "day"):
        for env in ("prod", "dev"):
            want = series_merged("t.tagfill", resolution, env=env)
            assert same_rows(tag_rows("t.tagfill", f"env={env}", resolution), want)
    tags = set(
        NameRollup.objects.filter(name="t.tagfill").values_list("tag", flat=True)
    )
    assert tags == {"", "env=prod", "env=dev"}


@pytest.mark.parametrize("keys", [["region"], []])
def test_tags_backfill__keys_not_configured__refused(settings, keys):
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = ["env"]
    with pytest.raises(ValidationFailed) as raised:
        rollups_backfill_tags(keys=keys)
    assert "keys" in raised.value.extra["fields"]


BEFORE_TAGS = ("metrics", "0004_series_name_tags")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_migration_0005__reversed_with_tag_rows__whole_name_rows_kept():
    # Given a name's rollup and one of its tags' for one bucket
    for tag, count in (("", 3), ("env=prod", 2)):
        NameRollup.objects.create(
            resolution="minute", name="t.mig5", tag=tag, bucket_start=HOUR,
            count=count, sum=1.0, min=1.0, max=1.0, sketch_keys=[0],
            sketch_counts=[count],
        )  # fmt: skip
    try:
        # When 0005 is reversed
        old = _migrate(BEFORE_TAGS).get_model("metrics", "NameRollup")
        kept = list(old.objects.filter(name="t.mig5").values_list("count", flat=True))
    finally:
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )
    # Then only the whole name's row is left
    assert kept == [3]


def test_runs__consecutive_buckets__one_range_each_split_at_gaps():
    minute = timedelta(minutes=1)
    buckets = [HOUR + k * minute for k in (*range(150), 200, 202, 203)]

    runs = _runs(buckets, minute)

    # Not cut at an hour: minutes_roll reads a run in pieces of ROWS_PER_READ.
    assert runs == [
        (HOUR, HOUR + 150 * minute),
        (HOUR + 200 * minute, HOUR + 201 * minute),
        (HOUR + 202 * minute, HOUR + 204 * minute),
    ]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_tags_backfill__during_a_late_re_roll__per_tag_row_is_the_fresh_merge(
    settings,
):
    # Given env's rollups, and a late prod sample whose minute is re-rolling
    # now: it has written its rows and waits, uncommitted, to mark its hour
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = ["env"]
    write_tagged("t.tagrace")
    roll_all(now=HOUR + timedelta(days=2))
    SampleWriter(database=default_database).write(
        [sample("t.tagrace", 1000.0, at=HOUR + timedelta(seconds=5), **TAGGED[0])]
    )
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "INSERT INTO metrics_pendingrollup (resolution, bucket_start) "
                "VALUES ('hour', %s)",
                [HOUR],
            )
            roll = in_thread(
                lambda: rollup_due(
                    resolution=Resolution.MINUTE, now=LATER, grace=timedelta(0)
                )
            )
            waiting_sessions(1)

            # When the backfill runs meanwhile, and the re-roll then commits
            fill = in_thread(lambda: rollups_backfill_tags(keys=["env"]))
            waiting_sessions(2)
            cursor.execute("ROLLBACK")
    finally:
        holder.close()
    roll.result(timeout=30)
    fill.result(timeout=30)

    # Then prod's minute holds the late sample, as its series rollups merged do
    want = series_merged("t.tagrace", "minute", env="prod")
    got = tag_rows("t.tagrace", "env=prod", "minute")
    assert got[0][4] == 1000.0
    assert same_rows(got, want)


def in_thread(work: Callable[[], object]) -> Future:
    """``work`` on a thread of its own (its own connection, closed after)."""

    def run() -> object:
        try:
            return work()
        finally:
            connection.close()

    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(run)
    pool.shutdown(wait=False)
    return future


def waiting_sessions(count: int) -> None:
    """Until ``count`` sessions of the test database wait on a lock."""

    def waiting() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0] == count

    wait_until(waiting, timeout=30, what=f"{count} sessions waiting on a lock")


def analyzed(day) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples >= 0 FROM pg_class WHERE oid = %s::regclass",
            [partition_name(day)],
        )
        return cursor.fetchone()[0]


def unsummarized(day) -> int:
    """How many of ``day``'s BRIN ranges were unsummarized (summarizing them)."""
    with connection.cursor() as cursor:
        cursor.execute(BRIN_SUMMARIZE_SQL, [partition_name(day)])
        return cursor.fetchone()[0]


def write_minutes(name: str, start: datetime, minutes: int) -> None:
    """30,000 samples over ``minutes`` minutes from ``start``: more than one BRIN
    range (128 pages), so the last one is partial."""
    spacing = minutes * 60 / 30_000
    SampleWriter(database=default_database).write(
        [
            sample(name, float(n), at=start + timedelta(seconds=n * spacing))
            for n in range(30_000)
        ]
    )


FRESH_DAY = (HOUR - timedelta(days=9)).replace(hour=0)
# The transactional test's partition stays (a flush empties, it does not drop).
LOCKED_DAY = FRESH_DAY - timedelta(days=1)


@pytest.mark.parametrize(
    ("minutes", "readied"), [(CATCH_UP_MINUTES + 5, True), (2, False)]
)
def test_minute_rollup__backlog_in_a_fresh_partition__analyzed_and_summarized_first(
    minutes, readied
):
    # Given a partition made new (in this test's transaction, so the writer's
    # nests in it) and never analyzed, holding `minutes` minutes due, and no
    # other minute due
    PendingRollup.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {partition_name(FRESH_DAY.date())}")
    write_minutes("t.fresh", FRESH_DAY, minutes)
    assert not analyzed(FRESH_DAY.date())

    # When they are rolled
    rollup_due(resolution=Resolution.MINUTE, now=LATER, grace=timedelta(0))

    # Then a backlog had it analyzed and its BRIN ranges summarized before the
    # reads; a steady run leaves both to autovacuum (a summarized last range
    # would cost every later insert into it)
    day = FRESH_DAY.date()
    assert (analyzed(day), unsummarized(day) == 0) == (readied, readied)
    assert len(minute_rows("t.fresh")) == minutes


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_minute_rollup__backlog_partition_locked_elsewhere__rolled_without_waiting():
    write_minutes("t.locked", LOCKED_DAY, CATCH_UP_MINUTES + 5)
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                f"LOCK TABLE {partition_name(LOCKED_DAY.date())} "
                "IN SHARE UPDATE EXCLUSIVE MODE"
            )
            roll = in_thread(
                lambda: rollup_due(
                    resolution=Resolution.MINUTE, now=LATER, grace=timedelta(0)
                )
            )
            # Rolled while the lock is held: it did not wait for it
            assert roll.result(timeout=30) == CATCH_UP_MINUTES + 5
            cursor.execute("ROLLBACK")
    finally:
        holder.close()
