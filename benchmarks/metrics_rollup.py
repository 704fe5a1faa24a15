"""Rolling raw samples up into minutes, side by side with a plain SQL percentile.

    PYTHONPATH=. .venv/bin/python benchmarks/metrics_rollup.py [--samples N] [--repeat R]

Uses DATABASE_URL / REDIS_URL when set, else starts embedded servers for the run.
N raw samples (lognormal values, 100 series, 100 per series and minute) are loaded
with the persister's COPY writer and settled as autovacuum keeps them in steady
ingest (BRIN ranges summarized, partitions analyzed: ``settle``; ``--fresh``
skips it); then, each
timed on its own, the subjects taking
turns R times (best and median printed, so a burst of load on the shared machine
hits all of them alike), with CPU seconds (load stretches the wall clock, it
barely moves those): of PostgreSQL, the backend serving this connection plus the
parallel workers it started (read from the postmaster's reaped children, so an
autovacuum worker ending meanwhile would count too), of which the backend alone,
and of this process, which plays the rollup worker:
- ours: ``rollup_due`` for every minute (PostgreSQL reads each series' raw times
  and values as arrays; numpy in this process computes count, sum, min, max and
  the log-bucket sketch per series, per name and per tag; one upsert per table
  writes ``metrics_rollup`` and ``metrics_namerollup``), then hours merged from
  those minutes in SQL (per series, per name and per tag); the configured tag
  keys (``OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS``) always include ``env``, which
  every series carries (``env=bench``), and never ``host`` (one value per series);
- the same with no tag keys configured (per-name rollups only), to show what the
  per-tag rollups cost;
- a plain ``percentile_cont`` GROUP BY per series and minute over the same rows
  (p50/p95/p99 exact, not mergeable, results fetched, nothing stored; PostgreSQL
  runs it with parallel workers, whose CPU counts in its PostgreSQL column);
- the Python ``ddsketch`` package (a dev dependency) fed the same rows per series
  and minute: its sketches only, nothing stored.
Then query latency through ``metrics_query`` (the API's selector) after the rolled
minutes and hours are copied forward in time to fill 30 days of hours and 24 hours
of minutes: a 30-day query at 1 h step and a 24-hour query at 1 min step, for one
series, for all 100 series of the name (no tag filter: the per-name rollups) and
for the same 100 series picked by a tag they all carry (``env=bench``, a
configured key: the per-tag rollups), the same filter with ``env`` taken out of
the configured keys (the 100 series' own rollups merged at query time, the path
of any filter without per-tag rollups), and one series picked by its ``host``
tag (not configured: that series' rollups), best and median of 5.
"""

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psutil

from benchmarks.flags_common import django_setup, servers

SERIES = 100
QUERY_TURNS = 5
W = 62  # the label column of the printed tables
PER_SERIES_MINUTE = 100
BASELINE_SQL = """
SELECT series_id, date_trunc('minute', at, 'UTC'), count(*), sum(value), min(value),
       max(value),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY value)
FROM metrics_sample WHERE at >= %s AND at < %s GROUP BY 1, 2
"""


MINUTES = "ours: minute rollups (numpy in the worker, upsert)"
HOURS = "ours: hours merged from the minutes"
UNTAGGED = " [no tag keys]"
BASELINE = "plain SQL percentile_cont GROUP BY"
# CPU seconds per subject, each turn (PostgreSQL, its backend, this process):
# the machine's load stretches wall-clock times, it barely moves these.
CPU: dict[str, list[tuple[float, float, float]]] = {}


def _seconds(process: psutil.Process, *, children: bool = False) -> float:
    times = process.cpu_times()
    if children:
        return times.children_user + times.children_system
    return times.user + times.system


@contextmanager
def cpu(subject: str) -> Iterator[None]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = psutil.Process(cursor.fetchone()[0])
    postmaster = backend.parent()
    before = (
        _seconds(backend),
        _seconds(postmaster, children=True),
        time.process_time(),
    )
    yield
    used = _seconds(backend) - before[0]
    workers = _seconds(postmaster, children=True) - before[1]
    CPU.setdefault(subject, []).append(
        (used + workers, used, time.process_time() - before[2])
    )


def load(samples: int, start: datetime) -> datetime:
    """COPY ``samples`` rows from ``start``; the end of the last minute."""
    from apps.metrics.buffer import sample_row
    from apps.metrics.db import default_database
    from apps.metrics.storage import SampleWriter

    writer = SampleWriter(database=default_database)
    per_minute = SERIES * PER_SERIES_MINUTE
    rng = random.Random(7)
    batch = []
    for n in range(samples):
        minute, rest = divmod(n, per_minute)
        at = start + timedelta(minutes=minute, microseconds=rest)
        tags = (("env", "bench"), ("host", f"h{rest % SERIES}"))
        batch.append(sample_row("bench.rollup", tags, at, rng.lognormvariate(3, 1)))
        if len(batch) == 50_000:
            writer.write(batch)
            batch = []
    writer.write(batch)
    return start + timedelta(minutes=-(-samples // per_minute))


def settle() -> None:
    """Bring the loaded partitions to where autovacuum keeps them in steady
    ingest, where these samples would arrive over 100 minutes per 1M: each
    filled BRIN range summarized (``autosummarize``) and statistics taken
    (autoanalyze, every tenth of a partition new). Both sides read the same."""
    from django.db import connection

    from apps.metrics.partitions import BRIN_SUMMARIZE_SQL, partitions_list

    with connection.cursor() as cursor:
        for partition in partitions_list():
            cursor.execute(BRIN_SUMMARIZE_SQL, [partition])
            cursor.execute(f"ANALYZE {partition}")


def ours(start: datetime, end: datetime, label: str = "") -> tuple[float, float, int]:
    from django.db import connection

    from apps.metrics.models import Resolution
    from apps.metrics.rollups import rollup_due

    with connection.cursor() as cursor:  # every minute due again, nothing rolled
        cursor.execute(
            "TRUNCATE metrics_rollup, metrics_namerollup, metrics_pendingrollup"
        )
        cursor.execute(
            "INSERT INTO metrics_pendingrollup (resolution, bucket_start) "
            "SELECT 'minute', generate_series(%s, %s, interval '1 minute')",
            [start, end - timedelta(minutes=1)],
        )
    later = end + timedelta(days=1)
    started = time.perf_counter()
    with cpu(MINUTES + label):
        minutes = rollup_due(
            resolution=Resolution.MINUTE, now=later, grace=timedelta(0), limit=100_000
        )
    rolled = time.perf_counter()
    with cpu(HOURS + label):
        rollup_due(resolution=Resolution.HOUR, now=later, grace=timedelta(0))
    return rolled - started, time.perf_counter() - rolled, minutes


def ours_untagged(start: datetime, end: datetime) -> tuple[float, float]:
    from django.conf import settings

    keys = settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = []
    try:
        minute_seconds, hour_seconds, _ = ours(start, end, UNTAGGED)
    finally:
        settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = keys
    return minute_seconds, hour_seconds


def baseline(start: datetime, end: datetime) -> tuple[float, int]:
    from django.db import connection

    started = time.perf_counter()
    with cpu(BASELINE), connection.cursor() as cursor:
        cursor.execute(BASELINE_SQL, [start, end])
        rows = cursor.fetchall()
    return time.perf_counter() - started, len(rows)


def python_ddsketch(start: datetime, end: datetime) -> float:
    from ddsketch import DDSketch
    from django.db import connection

    started = time.perf_counter()
    sketches: dict[tuple[int, datetime], DDSketch] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT series_id, date_trunc('minute', at, 'UTC'), value "
            "FROM metrics_sample WHERE at >= %s AND at < %s",
            [start, end],
        )
        for series, minute, value in cursor:
            key = (series, minute)
            if key not in sketches:
                sketches[key] = DDSketch(relative_accuracy=0.01)
            sketches[key].add(value)
    return time.perf_counter() - started


FILL_SQL = """
INSERT INTO {table} (resolution, {owner}, bucket_start, count, sum, min, max,
                     sketch_keys, sketch_counts, rolled_at)
SELECT resolution, {owner}, bucket_start - n * %s, count, sum, min, max,
       sketch_keys, sketch_counts, now()
FROM {table}, generate_series(1, %s) AS n WHERE resolution = %s
"""


def fill_forward(start: datetime, end: datetime) -> None:
    """Copy the rolled hours back over 30 days and the minutes over 24 hours,
    per series, per name and per tag."""
    from django.db import connection

    hours = -(-(end - start) // timedelta(hours=1))
    minutes = (end - start) // timedelta(minutes=1)
    with connection.cursor() as cursor:
        for table, owner in (
            ("metrics_rollup", "series_id"),
            ("metrics_namerollup", "name, tag"),
        ):
            for resolution, size, span in (
                ("hour", timedelta(hours=hours), timedelta(days=30)),
                ("minute", timedelta(minutes=minutes), timedelta(hours=24)),
            ):
                cursor.execute(
                    FILL_SQL.format(table=table, owner=owner),
                    [size, span // size, resolution],
                )
            cursor.execute(f"ANALYZE {table}")


def query_latencies(end: datetime) -> list[tuple[str, int, list[float]]]:
    from django.conf import settings

    from apps.metrics.selectors import metrics_query

    keys = settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS
    untagged = [key for key in keys if key != "env"]

    cases = [
        ("30 days at 1 h", timedelta(days=30), 3600),
        ("24 hours at 1 min", timedelta(hours=24), 60),
    ]
    results = []
    for label, span, step in cases:
        for who, tags, configured in (
            ("1 series, host=h1 (key not configured)", {"host": "h1"}, keys),
            ("100 series", {}, keys),
            ("100 series, env=bench (per-tag rollups)", {"env": "bench"}, keys),
            ("100 series, env=bench (env not configured)", {"env": "bench"}, untagged),
        ):
            settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = configured
            timings, buckets = [], 0
            for _ in range(QUERY_TURNS):
                started = time.perf_counter()
                _, rows = metrics_query(
                    name="bench.rollup", tags=tags, start=end - span, end=end, step=step
                )
                timings.append(time.perf_counter() - started)
                buckets = len(rows)
            results.append((f"{label}, {who}", buckets, timings))
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = keys
    return results


def _load() -> str:
    return " ".join(f"{figure:.2f}" for figure in os.getloadavg())


def turns(
    subjects: dict[str, Callable[[], float]], repeat: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(repeat):
        for name, subject in subjects.items():
            times[name].append(subject())
    return times


def main(samples: int, repeat: int, *, fresh: bool = False) -> None:
    django_setup()
    from django.conf import settings
    from django.core.management import call_command

    keys = settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = [
        *(key for key in keys if key not in ("env", "host")),
        "env",
    ]
    print(f"tag keys: {', '.join(settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS)}")
    call_command("migrate", verbosity=0)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=1)
    end = load(samples, start)
    if not fresh:
        settle()
    print("partitions: " + ("fresh (no statistics)" if fresh else "settled"))
    hours: list[float] = []
    untagged_hours: list[float] = []
    minutes = series_minutes = 0

    def untagged_rollup() -> float:
        minute_seconds, hour_seconds = ours_untagged(start, end)
        untagged_hours.append(hour_seconds)
        return minute_seconds

    def minute_rollup() -> float:
        nonlocal minutes
        minute_seconds, hour_seconds, minutes = ours(start, end)
        hours.append(hour_seconds)
        return minute_seconds

    def percentile_cont() -> float:
        nonlocal series_minutes
        seconds, series_minutes = baseline(start, end)
        return seconds

    subjects: dict[str, Callable[[], float]] = {
        # The full run (the second) leaves its rollups for the queries below.
        MINUTES + UNTAGGED: untagged_rollup,
        MINUTES: minute_rollup,
        BASELINE: percentile_cont,
        "Python ddsketch, fed per series-minute": lambda: python_ddsketch(start, end),
    }
    print(f"load average before the turns: {_load()}")
    times = turns(subjects, repeat)
    times[HOURS] = hours
    times[HOURS + UNTAGGED] = untagged_hours
    per_m = 1e6 / samples
    print(f"load average after the turns: {_load()}")
    print(f"{samples:,} raw samples, {series_minutes:,} series-minutes")
    print(f"{'subject':{W}} {'best s':>7} {'median':>7} {'best per 1M':>11}")
    for name, seconds in times.items():
        best, median = min(seconds), statistics.median(seconds)
        print(f"{name:{W}} {best:7.2f} {median:7.2f} {best * per_m:11.2f}")
    print(
        f"{'CPU s, best / median':{W}} {'PostgreSQL':>11} {'its backend':>11} "
        f"{'worker':>11}"
    )
    for name, turns_cpu in CPU.items():
        columns = []
        for figures in zip(*turns_cpu, strict=True):
            columns.append(f"{min(figures):5.2f}/{statistics.median(figures):5.2f}")
        print(f"{name:{W}} {' '.join(f'{c:>11}' for c in columns)}")
    print(f"minute buckets rolled per turn: {minutes}; turns: {repeat}")
    fill_forward(start, end)
    print(
        f"{'query (metrics_query)':{W}} {'buckets':>7} {'best ms':>8} {'median ms':>9}"
    )
    for label, buckets, timings in query_latencies(end):
        best, median = min(timings) * 1e3, statistics.median(timings) * 1e3
        print(f"{label:{W}} {buckets:7} {best:8.1f} {median:9.1f}")
    print(f"load average at the end: {_load()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="roll right after loading, before autovacuum's work (no settle)",
    )
    arguments = parser.parse_args()
    with servers():
        main(arguments.samples, arguments.repeat, fresh=arguments.fresh)
