"""Rolling raw samples up into minutes, side by side with a plain SQL percentile.

    PYTHONPATH=. .venv/bin/python benchmarks/metrics_rollup.py [--samples N]

Uses DATABASE_URL / REDIS_URL when set, else starts embedded servers for the run.
N raw samples (lognormal values, 100 series, 100 per series and minute) are loaded
with the persister's COPY writer; then, each timed on its own:
- ours: ``rollup_due`` for every minute (count, sum, min, max and the log-bucket
  sketch computed in PostgreSQL, upserted into ``metrics_rollup``), then hours
  merged from those minutes;
- a plain ``percentile_cont`` GROUP BY per series and minute over the same rows
  (p50/p95/p99 exact, not mergeable, results fetched, nothing stored);
- the Python ``ddsketch`` package fed the same rows per series and minute, when
  it is installed (the column is skipped otherwise).
"""

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from benchmarks.flags_common import django_setup, servers

SERIES = 100
PER_SERIES_MINUTE = 100
BASELINE_SQL = """
SELECT series_id, date_trunc('minute', at, 'UTC'), count(*), sum(value), min(value),
       max(value),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY value)
FROM metrics_sample WHERE at >= %s AND at < %s GROUP BY 1, 2
"""


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
        tags = (("host", f"h{rest % SERIES}"),)
        batch.append(sample_row("bench.rollup", tags, at, rng.lognormvariate(3, 1)))
        if len(batch) == 50_000:
            writer.write(batch)
            batch = []
    writer.write(batch)
    return start + timedelta(minutes=-(-samples // per_minute))


def ours(end: datetime) -> tuple[float, float, int]:
    from apps.metrics.models import Resolution
    from apps.metrics.rollups import rollup_due

    later = end + timedelta(days=1)
    started = time.perf_counter()
    minutes = rollup_due(
        resolution=Resolution.MINUTE, now=later, grace=timedelta(0), limit=100_000
    )
    rolled = time.perf_counter()
    rollup_due(resolution=Resolution.HOUR, now=later, grace=timedelta(0))
    return rolled - started, time.perf_counter() - rolled, minutes


def baseline(start: datetime, end: datetime) -> tuple[float, int]:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(BASELINE_SQL, [start, end])
        rows = cursor.fetchall()
    return time.perf_counter() - started, len(rows)


def python_ddsketch(start: datetime, end: datetime) -> float | None:
    try:
        from ddsketch import DDSketch
    except ImportError:
        return None
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


def main(samples: int) -> None:
    django_setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=1)
    end = load(samples, start)
    sql_seconds, buckets = baseline(start, end)
    minute_seconds, hour_seconds, minutes = ours(end)
    dd_seconds = python_ddsketch(start, end)
    per_m = 1e6 / samples
    print(f"{samples:,} raw samples, {buckets:,} series-minutes, one run")
    print(f"{'subject':44} {'s':>7} {'s per 1M':>9}")
    lines = [
        ("ours: minute rollups (sketch in SQL, upsert)", minute_seconds),
        ("plain SQL percentile_cont GROUP BY", sql_seconds),
        ("ours: hours merged from the minutes", hour_seconds),
    ]
    if dd_seconds is not None:
        lines.append(("Python ddsketch, fed per series-minute", dd_seconds))
    for name, seconds in lines:
        print(f"{name:44} {seconds:7.2f} {seconds * per_m:9.2f}")
    if dd_seconds is None:
        print("ddsketch is not installed: its column is skipped")
    print(f"minute buckets rolled: {minutes}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=1_000_000)
    arguments = parser.parse_args()
    with servers():
        main(arguments.samples)
