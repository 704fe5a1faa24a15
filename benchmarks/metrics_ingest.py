"""Ingest throughput into PostgreSQL, side by side in one run, and ``record()`` cost.

    PYTHONPATH=. .venv/bin/python benchmarks/metrics_ingest.py [--samples N]

Uses DATABASE_URL / REDIS_URL when set, else starts embedded servers for the run.
Subjects, each writing N samples over 100 series into ``metrics_sample``:
- the whole path: ``metrics.record()`` on this thread → the process buffer → the
  persister thread's COPY, timed from the first record until the persister has
  flushed all N (both threads share the GIL, as they do in production);
- Django ``bulk_create`` of ``Sample`` rows in batches of 10,000;
- a raw psycopg binary COPY loop in batches of 10,000 (no series lookup, no
  pending-rollup marks: the ceiling);
then ``record()`` per call on the caller's thread (best of five runs of 200,000,
the persister draining meanwhile).
"""

import argparse
import os
import tempfile
import time
import timeit
from datetime import UTC, datetime, timedelta

from benchmarks.flags_common import django_setup, servers

SERIES = 100
BATCH = 10_000


def prepare(samples: int, spill_dir: str) -> None:
    # The buffer holds a whole run, so the producer is never refused.
    os.environ["OPSCONSOLE_METRICS_BUFFER_MAX"] = str(samples + 1_100_000)
    os.environ["OPSCONSOLE_METRICS_SPILL_DIR"] = spill_dir
    os.environ["OPSCONSOLE_METRICS_FLUSH_BATCH"] = str(BATCH)
    django_setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE metrics_sample, metrics_pendingrollup")


def check_landed(expected: int, subject: str) -> None:
    """Fail the run unless every row of ``subject`` is in the table."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics_sample")
        found = int(cursor.fetchone()[0])
    if found != expected:
        raise SystemExit(f"{subject}: {found} rows landed, expected {expected}")


def whole_path(samples: int) -> float:
    from apps import metrics
    from apps.metrics import process

    metrics.record("bench.warmup", 0.0)  # start the persister outside the timing
    start = time.perf_counter()
    for n in range(samples):
        metrics.record("bench.ingest", float(n), {"host": f"h{n % SERIES}"})
    target = samples + 1
    while (stats := process.persister_stats()) is None or stats.flushed < target:
        time.sleep(0.005)
    return samples / (time.perf_counter() - start)


def series_ids() -> list[int]:
    from apps.metrics.models import Series

    ids = []
    for n in range(SERIES):
        series, _ = Series.objects.get_or_create(
            name="bench.baseline",
            tags_hash=f"{n:040d}",
            defaults={"tags": {"host": f"h{n}"}},
        )
        ids.append(series.pk)
    return ids


def rows(samples: int, ids: list[int]) -> list[tuple[int, datetime, float]]:
    start = datetime.now(UTC)
    return [
        (ids[n % SERIES], start + timedelta(microseconds=n), float(n))
        for n in range(samples)
    ]


def bulk_create(data: list[tuple[int, datetime, float]]) -> float:
    from django.db import transaction

    from apps.metrics.models import Sample

    start = time.perf_counter()
    for low in range(0, len(data), BATCH):
        objs = [
            Sample(series_id=s, at=a, value=v) for s, a, v in data[low : low + BATCH]
        ]
        with transaction.atomic():
            Sample.objects.bulk_create(objs)
    return len(data) / (time.perf_counter() - start)


def raw_copy(data: list[tuple[int, datetime, float]]) -> float:
    from apps.metrics.db import raw_connection
    from apps.metrics.storage import COPY_SQL

    connection = raw_connection()
    start = time.perf_counter()
    for low in range(0, len(data), BATCH):
        with (
            connection.transaction(),
            connection.cursor() as cursor,
            cursor.copy(COPY_SQL) as copy,
        ):
            copy.set_types(["int8", "timestamptz", "float8"])
            for row in data[low : low + BATCH]:
                copy.write_row(row)
    return len(data) / (time.perf_counter() - start)


def record_cost(calls: int = 200_000) -> float:
    from apps import metrics

    def one() -> None:
        metrics.record("bench.cost", 1.0, {"host": "h1"})

    return min(timeit.repeat(one, number=calls, repeat=5)) / calls * 1e9


def main(samples: int) -> None:
    prepare(samples, tempfile.mkdtemp(prefix="opsconsole-bench-spill-"))
    from apps.metrics import process
    from apps.metrics.partitions import partitions_create

    partitions_create(
        days=[datetime.now(UTC).date() + timedelta(days=d) for d in (0, 1)]
    )
    truncate()
    results = [("record → buffer → persister", whole_path(samples))]
    check_landed(samples + 1, "whole path")  # and the warm-up sample
    data = rows(samples, series_ids())
    for name, subject in (
        ("Django bulk_create", bulk_create),
        ("raw psycopg COPY", raw_copy),
    ):
        truncate()
        results.append((name, subject(data)))
        check_landed(samples, name)
    bulk, copy = results[1][1], results[2][1]
    print(f"{samples:,} samples over {SERIES} series, one run, side by side")
    print(f"{'subject':32} {'rows/s':>10} {'x bulk':>7} {'x COPY':>7}")
    for name, rate in results:
        print(f"{name:32} {rate:10,.0f} {rate / bulk:7.2f} {rate / copy:7.2f}")
    print(f"record() per call on the caller's thread: {record_cost():,.0f} ns")
    process.shutdown()  # flush the cost run's samples before the servers stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=500_000)
    arguments = parser.parse_args()
    with servers():
        main(arguments.samples)
