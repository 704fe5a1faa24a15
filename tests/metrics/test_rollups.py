"""Rollups: idempotent minutes, late samples re-roll, merged hours keep accuracy;
retention drops whole partitions."""

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.metrics.db import default_database
from apps.metrics.models import PendingRollup, Resolution, Rollup
from apps.metrics.partitions import partition_name, partitions_create, partitions_list
from apps.metrics.rollups import rollup_due
from apps.metrics.services import retention_apply
from apps.metrics.sketch import RELATIVE_ACCURACY, quantile
from apps.metrics.storage import SampleWriter
from tests.metrics.conftest import sample

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
        .values_list("bucket_start", "count", "sum", "min", "max", "sketch")
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
    ((_, count, total, low, high, sketch),) = minute_rows("t.signs")
    assert (count, total, low, high) == (6, 2.0, -2.0, 2.0)
    assert sketch == {"z": 3, "35": 2, "n35": 1}


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
    assert (hour.count, hour.max, sum(hour.sketch.values())) == (2, 1000, 2)


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
    merged: dict[str, int] = {}
    for hour in hours:
        for key, count in hour.sketch.items():
            merged[key] = merged.get(key, 0) + count
    ordered = sorted(values)
    for q in (0.0, 0.5, 0.95, 0.99, 1.0):
        exact = ordered[math.floor(q * (len(ordered) - 1))]
        estimate = quantile(merged, q, lowest=ordered[0], highest=ordered[-1])
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
