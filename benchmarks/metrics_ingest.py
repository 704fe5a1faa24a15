"""Ingest throughput into PostgreSQL, side by side in one run, and ``record()`` cost.

    PYTHONPATH=. .venv/bin/python benchmarks/metrics_ingest.py [--samples N] [--rounds R]

Uses DATABASE_URL / REDIS_URL when set, else starts embedded servers for the run.
Subjects, each writing N samples over 100 series into ``metrics_sample``:
- the whole path: ``metrics.record()`` on this thread → the process buffer → the
  persister thread's COPY, timed from the first record until the persister has
  flushed all N (both threads share the GIL, as they do in production); three
  times: the inputs made in the loop (an f-string and a tags dict per sample),
  and made before the timing, as raw COPY's rows are, once with ``record()`` in C
  (``_recordc``, what ``make`` builds) and once with its Python twin
  (``recording.record_python``, what runs where it is not built);
- Django ``bulk_create`` of ``Sample`` rows in batches of 10,000;
- a raw psycopg binary COPY loop in batches of 10,000 (no series lookup, no
  pending-rollup marks: the ceiling).
The subjects run R times in turn (a round each), and each whole path is given as
a share of the raw COPY of its own round (min, median, max): raw COPY alone
swung from 1.3M to 2.9M rows/s between runs here. Then ``record()`` per call on
the caller's thread, in C and in Python (best of five runs of 200,000, the
persister draining meanwhile), in wall time and in that thread's CPU time.

Each subject also prints the process CPU time per row and PostgreSQL's (its
postmaster and backends, when the server is local); the whole path splits its
own into the producer thread and the rest (the persister thread). Producer and
persister share one GIL, so 1e9 / (CPU ns per sample) is the most this process
could reach on one idle core: its ceiling.
"""

import argparse
import contextlib
import os
import statistics
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psutil

from benchmarks.flags_common import django_setup, servers

SERIES = 100
BATCH = 10_000
BULK = "Django bulk_create"
COPY = "raw psycopg COPY"


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


@dataclass(frozen=True, slots=True)
class Figure:
    rate: float  # rows per second, wall clock
    cpu_ns: float  # process CPU time per row
    server_ns: float | None  # PostgreSQL's CPU time per row (None: not local)
    producer_ns: float = 0.0  # of which the producer thread (whole path only)


def server_cpu() -> float | None:
    """CPU seconds PostgreSQL has used so far: its postmaster, the children
    running now and those it has reaped (None when the server is not local)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    try:
        postmaster = psutil.Process(backend).parent()
        if postmaster is None:
            return None
        times = postmaster.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in postmaster.children():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = child.cpu_times()
                total += times.user + times.system
    except psutil.Error:
        return None
    return total


def per_row(before: float | None, after: float | None, rows: int) -> float | None:
    return None if before is None or after is None else (after - before) / rows * 1e9


def whole_path(
    samples: int, record: Callable[..., None], *, made_before: bool
) -> Figure:
    """``record`` of ``samples`` until the persister has flushed them; the
    inputs made in the loop (f-string, tags dict) or, as raw COPY's rows are,
    before the timing (``made_before``)."""
    record("bench.warmup", 0.0)  # start the persister outside the timing
    all_flushed()
    tags = [{"host": f"h{n}"} for n in range(SERIES)]
    inputs = [("bench.ingest", float(n), tags[n % SERIES]) for n in range(samples)]
    server = server_cpu()
    start, cpu, producer = time.perf_counter(), time.process_time(), time.thread_time()
    if made_before:
        for name, value, tagged in inputs:
            record(name, value, tagged)
    else:
        for n in range(samples):
            record("bench.ingest", float(n), {"host": f"h{n % SERIES}"})
    producer = time.thread_time() - producer
    all_flushed()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    server = per_row(server, server_cpu(), samples)
    return Figure(samples / wall, cpu / samples * 1e9, server, producer / samples * 1e9)


def all_flushed() -> None:
    """Wait until the persister has flushed every sample recorded so far."""
    from apps.metrics import process

    while (
        stats := process.persister_stats()
    ) is None or stats.flushed < stats.recorded:
        time.sleep(0.001)


def timed(subject: Callable[[], None], rows: int) -> Figure:
    server = server_cpu()
    start, cpu = time.perf_counter(), time.process_time()
    subject()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Figure(rows / wall, cpu / rows * 1e9, per_row(server, server_cpu(), rows))


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


def bulk_create(data: list[tuple[int, datetime, float]]) -> None:
    from django.db import transaction

    from apps.metrics.models import Sample

    for low in range(0, len(data), BATCH):
        objs = [
            Sample(series_id=s, at=a, value=v) for s, a, v in data[low : low + BATCH]
        ]
        with transaction.atomic():
            Sample.objects.bulk_create(objs)


def raw_copy(data: list[tuple[int, datetime, float]]) -> None:
    from apps.metrics.db import raw_connection
    from apps.metrics.storage import COPY_SQL

    connection = raw_connection()
    for low in range(0, len(data), BATCH):
        with (
            connection.transaction(),
            connection.cursor() as cursor,
            cursor.copy(COPY_SQL) as copy,
        ):
            copy.set_types(["int8", "timestamptz", "float8"])
            for row in data[low : low + BATCH]:
                copy.write_row(row)


def record_cost(
    record: Callable[..., None], calls: int = 200_000
) -> tuple[float, float]:
    """Best of five: wall ns per call, and the calling thread's CPU ns per call."""

    def one() -> None:
        record("bench.cost", 1.0, {"host": "h1"})

    wall = min(timeit.repeat(one, number=calls, repeat=5))
    cpu = min(timeit.repeat(one, number=calls, repeat=5, timer=time.thread_time))
    return wall / calls * 1e9, cpu / calls * 1e9


def whole_paths() -> list[tuple[str, Callable[..., None], bool]]:
    """Each whole path's name, its record() and whether its inputs are made before."""
    from apps.metrics import _recordc
    from apps.metrics.recording import record_python

    return [
        ("record → persister, made in loop", _recordc.record, False),
        ("record → persister, made before", _recordc.record, True),
        ("record_python → persister, made before", record_python, True),
    ]


def one_round(
    samples: int, data: list[tuple[int, datetime, float]]
) -> list[tuple[str, Figure]]:
    results = []
    for name, record, made_before in whole_paths():
        truncate()
        results.append((name, whole_path(samples, record, made_before=made_before)))
        check_landed(samples + 1, name)  # and the warm-up sample
    for name, subject in ((BULK, bulk_create), (COPY, raw_copy)):
        truncate()
        results.append((name, timed(lambda subject=subject: subject(data), samples)))
        check_landed(samples, name)
    return results


def summary(rounds: list[list[tuple[str, Figure]]]) -> None:
    """Each whole path against raw COPY of the same round: min, median, max."""
    print(f"over {len(rounds)} rounds, of raw COPY in the same round:")
    for name, _, _ in whole_paths():
        ratios = sorted(dict(r)[name].rate / dict(r)[COPY].rate for r in rounds)
        print(
            f"  {name}: min {ratios[0]:.2f}, "
            f"median {statistics.median(ratios):.2f}, max {ratios[-1]:.2f}"
        )


def main(samples: int, spill_dir: str, rounds_wanted: int) -> None:
    prepare(samples, spill_dir)
    from django.db import connection

    from apps.metrics import process
    from apps.metrics.partitions import partition_name, partitions_create

    days = [datetime.now(UTC).date() + timedelta(days=d) for d in (0, 1)]
    partitions_create(days=days)
    # An autovacuum analyze of one subject's rows ran during the next subject
    # (raw COPY at 0.85M rows/s against 1.75-2.0M, PostgreSQL's CPU per row
    # doubled): none during the run, for every subject alike.
    with connection.cursor() as cursor:
        for day in days:
            cursor.execute(
                f"ALTER TABLE {partition_name(day)} SET (autovacuum_enabled = false)"
            )
    print(f"load average at the start: {load()}")
    data = rows(samples, series_ids())
    rounds = []
    for number in range(1, rounds_wanted + 1):
        rounds.append(one_round(samples, data))
        report(samples, rounds[-1], f"round {number} of {rounds_wanted}")
    summary(rounds)
    from apps.metrics import _recordc
    from apps.metrics.recording import record_python

    for name, record in (
        ("record()", _recordc.record),
        ("record_python()", record_python),
    ):
        wall, cpu = record_cost(record)
        print(
            f"{name} per call on the caller's thread: {wall:,.0f} ns wall, "
            f"{cpu:,.0f} ns of its CPU"
        )
    print(f"load average at the end: {load()}")
    process.shutdown()  # flush the cost run's samples before the servers stop


def report(samples: int, results: list[tuple[str, Figure]], title: str) -> None:
    bulk, copy = dict(results)[BULK].rate, dict(results)[COPY].rate
    print(f"{title}: {samples:,} samples over {SERIES} series, side by side")
    print(
        f"{'subject':40} {'rows/s':>10} {'x bulk':>7} {'x COPY':>7} "
        f"{'CPU ns/row':>11} {'server ns/row':>14}"
    )
    for name, figure in results:
        server = "n/a" if figure.server_ns is None else f"{figure.server_ns:,.0f}"
        print(
            f"{name:40} {figure.rate:10,.0f} {figure.rate / bulk:7.2f} "
            f"{figure.rate / copy:7.2f} {figure.cpu_ns:11,.0f} {server:>14}"
        )
    for name, whole in results[: len(whole_paths())]:
        ceiling = 1e9 / whole.cpu_ns
        print(
            f"{name}: CPU per sample, producer thread {whole.producer_ns:,.0f} ns, "
            f"persister and the rest {whole.cpu_ns - whole.producer_ns:,.0f} ns; "
            f"one-GIL ceiling {ceiling:,.0f} samples/s ({ceiling / copy:.2f} of raw "
            f"COPY)"
        )


def load() -> str:
    return " ".join(f"{figure:.2f}" for figure in os.getloadavg())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    with (
        servers(),
        tempfile.TemporaryDirectory(prefix="opsconsole-bench-spill-") as spill,
    ):
        main(arguments.samples, spill, arguments.rounds)
