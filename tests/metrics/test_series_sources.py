"""The console's own series (issue #7 item 1) and summaries over long windows
(item 6): health checks, breaker flushes and flag usage flushes record samples
through ``metrics.record``; ``metrics_summaries`` tiles a window with day, hour
and minute rollups and agrees with the raw samples."""

import itertools
import json
import math
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection

from apps.breakers.agent import Agent
from apps.breakers.config import BreakerConfig
from apps.breakers.exceptions import BreakerOpenError
from apps.breakers.fleet import Fleet
from apps.breakers.guard import Guard
from apps.components.checkers.base import CheckOutcome
from apps.components.recording import result_record_pushed
from apps.flags.usage import Usage
from apps.metrics.db import default_database
from apps.metrics.models import Resolution
from apps.metrics.rollups import SIZE
from apps.metrics.selectors import metrics_summaries, window_ranges
from apps.metrics.sketch import RELATIVE_ACCURACY
from apps.metrics.storage import SampleWriter
from tests.components.helpers import make_component, rolls_closed, samples_forgotten
from tests.metrics.conftest import sample
from tests.procs import wait_until

MINUTE, HOUR, DAY = Resolution.MINUTE, Resolution.HOUR, Resolution.DAY
# Not on a minute: the window's edges must be rounded.
NOW = datetime(2026, 11, 29, 19, 21, 37, 500_000, tzinfo=UTC)
# The default retention of minute and hour rollups.
KEPT = {MINUTE: timedelta(days=30), HOUR: timedelta(days=400)}


def _floor(moment: datetime, size: timedelta) -> datetime:
    return moment - (moment - datetime(2000, 1, 1, tzinfo=UTC)) % size


def _ceil(moment: datetime, size: timedelta) -> datetime:
    floor = _floor(moment, size)
    return floor if floor == moment else floor + size


def _buckets(pieces: list[tuple[Resolution, datetime, datetime]]) -> int:
    return sum((high - low) // SIZE[res] for res, low, high in pieces)


def _assert_tiles(pieces, low: datetime, high: datetime) -> None:
    assert pieces[0][1] == low
    assert pieces[-1][2] == high
    for (_, _, end), (_, start, _) in itertools.pairwise(pieces):
        assert end == start
    for res, start, end in pieces:
        assert _floor(start, SIZE[res]) == start
        assert _floor(end, SIZE[res]) == end


def test_window_ranges__a_day__minutes_hours_minutes_tile_whole_minutes():
    pieces = window_ranges(
        start=NOW - timedelta(days=1), end=NOW, pending={}, kept=KEPT
    )
    assert [res for res, _, _ in pieces] == [MINUTE, HOUR, MINUTE]
    first = _ceil(NOW - timedelta(days=1), SIZE[MINUTE])
    _assert_tiles(pieces, first, _floor(NOW, SIZE[MINUTE]))
    assert _buckets(pieces) == 38 + 23 + 21


def test_window_ranges__a_year__days_in_the_middle_starts_on_the_hour():
    pieces = window_ranges(
        start=NOW - timedelta(days=365), end=NOW, pending={}, kept=KEPT
    )
    # Its first minutes are past the minute rollups' retention: it starts at the
    # next whole hour.
    assert [res for res, _, _ in pieces] == [HOUR, DAY, HOUR, MINUTE]
    first = _ceil(NOW - timedelta(days=365), SIZE[HOUR])
    _assert_tiles(pieces, first, _floor(NOW, SIZE[MINUTE]))
    assert _buckets(pieces) == 4 + 364 + 19 + 21


def test_window_ranges__a_year_past_the_hours_kept__starts_on_the_next_day():
    kept = {MINUTE: timedelta(days=2), HOUR: timedelta(days=35)}
    pieces = window_ranges(
        start=NOW - timedelta(days=365), end=NOW, pending={}, kept=kept
    )
    # Its first hours are past the name's hour rollups' retention too: it starts
    # at the next whole day, in days.
    assert [res for res, _, _ in pieces] == [DAY, HOUR, MINUTE]
    first = _ceil(NOW - timedelta(days=365), SIZE[DAY])
    _assert_tiles(pieces, first, _floor(NOW, SIZE[MINUTE]))
    assert _buckets(pieces) == 364 + 19 + 21


def test_window_ranges__a_week_past_the_minutes_kept__starts_on_the_hour():
    kept = {MINUTE: timedelta(days=2), HOUR: timedelta(days=35)}
    pieces = window_ranges(
        start=NOW - timedelta(days=7), end=NOW, pending={}, kept=kept
    )
    assert pieces[0][0] != MINUTE
    _assert_tiles(
        pieces, _ceil(NOW - timedelta(days=7), SIZE[HOUR]), _floor(NOW, SIZE[MINUTE])
    )


def test_window_ranges__hour_and_day_pending__finer_rollups_cover_from_there():
    hour = _floor(NOW, SIZE[HOUR]) - timedelta(hours=1)
    day = _floor(NOW, SIZE[DAY]) - timedelta(days=1)
    pending = {HOUR: [hour - timedelta(days=40), hour], DAY: [day]}
    pieces = window_ranges(
        start=NOW - timedelta(days=7), end=NOW, pending=pending, kept=KEPT
    )
    assert pieces[-1] == (MINUTE, hour, _floor(NOW, SIZE[MINUTE]))
    assert pieces[-2] == (HOUR, day, hour)
    assert pieces[-3][0] == DAY
    assert pieces[-3][2] == day


@pytest.fixture
def console_series(settings):
    """The console's series on; the raw samples this test wrote deleted at its end."""
    settings.OPSCONSOLE_METRICS_CONSOLE_SERIES = True
    with samples_forgotten():
        yield


def _lower_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_metrics_summaries__samples_over_weeks__raw_figures_and_a_year_reads_little(
    console_series,
):
    # Given a sample every 7 minutes over the last 3 days and some 20 days ago
    now = datetime.now(UTC)
    name, tags = "t.summary", {"component": uuid.uuid4().hex[:8]}
    recent = [now - timedelta(minutes=7 * n, seconds=n % 50) for n in range(620)]
    old = [now - timedelta(days=20, minutes=n) for n in range(30)]
    values = {at: float(1 + n % 997) for n, at in enumerate(recent + old)}
    SampleWriter(database=default_database).write(
        [sample(name, value, at=at, **tags) for at, value in values.items()]
    )
    rolls_closed(now + timedelta(days=2))
    # When it is summarised over a day, a month and a year
    windows = [(now - timedelta(days=d), now) for d in (1, 30, 365)]
    day, month, year = metrics_summaries(name=name, tags=tags, windows=windows)
    # Then each has the raw samples of its whole minutes, percentiles within 1 %
    for (start, end), got in zip(windows, (day, month, year), strict=True):
        low = _ceil(start, SIZE[MINUTE])
        if low < end - timedelta(days=30):
            low = _ceil(low, SIZE[HOUR])
        kept = [v for at, v in values.items() if low <= at < _floor(end, SIZE[MINUTE])]
        assert (got.count, got.sum) == (len(kept), sum(kept))
        assert (got.min, got.max) == (min(kept), max(kept))
        for q, estimate in zip(
            (0.5, 0.95, 0.99), (got.p50, got.p95, got.p99), strict=True
        ):
            exact = _lower_quantile(kept, q)
            assert abs(estimate - exact) <= RELATIVE_ACCURACY * exact * (1 + 1e-9)
    assert month.count == year.count > day.count
    # And a year reads about what a day does, not a year of samples
    assert day.rollups <= 23 + 2 * 59
    assert year.rollups <= 364 + 2 * 23 + 59
    assert month.first == year.first == _floor(min(values), SIZE[DAY])


@pytest.mark.django_db
def test_metrics_summaries__unknown_series__empty_figures():
    (empty,) = metrics_summaries(
        name="t.summary.none", tags={}, windows=[(NOW - timedelta(days=1), NOW)]
    )
    assert (empty.count, empty.min, empty.p99, empty.first) == (0, None, None, None)


# -- The sources: real record() calls, landed by this process's persister. ----


def _landed(name: str, **tags: str) -> list[float]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.value FROM metrics_sample m JOIN metrics_series s"
            " ON s.id = m.series_id WHERE s.name = %s AND s.tags @> %s::jsonb"
            " ORDER BY m.at",
            [name, json.dumps(tags)],
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_check_results__recorded__latency_and_up_per_result(console_series):
    slug = f"src-{uuid.uuid4().hex[:8]}"
    component = make_component(slug=slug)
    outcomes = [("healthy", 12.5), ("degraded", 40.0), ("unhealthy", 1000.0)]
    for status, latency in outcomes:
        outcome = CheckOutcome(status, latency, "checked")
        result_record_pushed(
            component_id=component.pk, outcome=outcome, now=datetime.now(UTC)
        )
    wait_until(
        lambda: len(_landed("component.check.up", component=slug)) == 3,
        timeout=30,
        what="check samples",
    )
    # Degraded is up; only unhealthy is down (as the statistics always counted).
    assert _landed("component.check.up", component=slug) == [1.0, 1.0, 0.0]
    latencies = wait_until(
        lambda: _landed("component.check.latency_ms", component=slug) or None,
        timeout=30,
        what="latency samples",
    )
    assert latencies == [12.5, 40.0, 1000.0]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_breaker_flush__outcomes_and_refusals__counted_per_outcome(console_series):
    # Given a breaker that opens at 2 failures in 4 calls, one call slow
    prefix = f"{django_settings.OPSCONSOLE_REDIS_PREFIX}t{uuid.uuid4().hex[:8]}:"
    agent = Agent(
        Fleet(django_settings.REDIS_URL, prefix), interval=0.02, persist=False
    )
    name = f"src-{uuid.uuid4().hex[:8]}"
    config = BreakerConfig(
        minimum_calls=4,
        window_size=4,
        slow_call_duration_ms=50,
        wait_duration_ms=60_000,
    )
    agent.fleet.store_config(name, config)
    try:
        breaker = agent.breaker(name)
        wait_until(lambda: breaker.config == config, timeout=5, what="config")
        # When it takes 2 successes (the second slow), 2 failures, then 3 refusals
        with Guard(breaker, None):
            pass
        with Guard(breaker, None):
            _spin(0.06)
        for _ in range(2):
            with pytest.raises(ValueError, match="down"), Guard(breaker, None):
                raise ValueError("down")
        for _ in range(3):
            with pytest.raises(BreakerOpenError), Guard(breaker, None):
                pass
        # Then the flushes record each outcome's count, calls before the trip too
        expected = {"success": 2.0, "failure": 2.0, "slow": 1.0, "rejected": 3.0}
        wait_until(
            lambda: _outcome_sums(name) == expected, timeout=30, what="breaker counts"
        )
    finally:
        agent.stop()


def _spin(seconds: float) -> None:
    """Busy for ``seconds``: the body of a slow call."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _outcome_sums(breaker: str) -> dict[str, float]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.tags->>'outcome', sum(m.value) FROM metrics_sample m"
            " JOIN metrics_series s ON s.id = m.series_id"
            " WHERE s.name = 'breaker.calls' AND s.tags->>'breaker' = %s GROUP BY 1",
            [breaker],
        )
        return dict(cursor.fetchall())


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_flag_usage_flush__twice__each_records_the_evaluations_since(console_series):
    key = f"src.{uuid.uuid4().hex[:8]}"
    usage = Usage(interval=3600)
    usage.counts[key] = 5
    assert usage.flush()
    usage.counts[key] += 3
    assert usage.flush()
    assert usage.flush()  # nothing new: no sample
    wait_until(
        lambda: _landed("flags.evaluations", flag=key) == [5.0, 3.0],
        timeout=30,
        what="evaluation samples",
    )
