"""The check pipeline under load, beside a raw aiohttp loop on the same target (#5).

    PYTHONPATH=. .venv/bin/python benchmarks/checks_pipeline.py \
        [--components 10000] [--seconds 60] [--raw-seconds 10] [--tick beat|loop]

Starts an embedded PostgreSQL and Valkey unless DATABASE_URL / REDIS_URL are set
(a scratch database, migrated), an aiohttp HTTP target in its own process, ONE
Celery worker as ``make run`` runs it (prefork, 2 children) and the dispatch tick:
real ``celery beat`` with the project's schedule (``components.dispatch_due`` every
second, run by the same worker), or with ``--tick loop`` a thread here calling
``components_dispatch_due`` every second. N HTTP components at a 30 s interval are
bulk-created through the ORM; every check then goes through the real pipeline
(claim, enqueue, batch run with aiohttp and breakers, bulk write, state machine).

Subjects, one after the other on the same target:
1. raw loop: one process, one aiohttp session, 50 requests in flight (the limit);
2. backlog: all N components due at once; checks/s while the worker drains them
   (the pipeline's capacity, comparable with the raw loop), ``--passes`` times:
   the first pass is every component's first check (unknown → healthy: a
   transition each) and meets its breaker (``component:<slug>``) for the first
   time in a worker child (registered in PostgreSQL and Redis by the breakers'
   flusher thread); later passes find more of them made in both children;
3. schedule: due times spread over the 30 s interval, run for ``--seconds``;
   checks/s, the lag from due time to start and worker CPU;
4. database floor: the least PostgreSQL work any pipeline that keeps a result row
   and a state per check must do, as bare SQL per batch of 100 (claim, insert the
   results, update the states, release; ``FLOOR_SQL``), in its backend's CPU per
   check, printed beside what the 0.7-of-raw target leaves for everything a check
   adds to a bare request: (1 / 0.7 - 1) x the raw loop's CPU per request.

Lag: a benchmark-only trigger (in the scratch database) logs each claim with the
due time it consumed (``next_check_at`` before the claim moved it) and the claim's
clock time; the target notes when each check's request arrives. Start lag = that
arrival - the due time of the component's latest claim before it; dispatch lag =
claim time - due time. Due components left unclaimed or unstarted at the end are
counted separately. CPU is process time (all children) as % of one core.

Benchmarks are not tests: this prints figures and asserts no limits.
"""

import argparse
import asyncio
import bisect
import threading
import time
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass

import psutil

from benchmarks.checks_common import (
    Proc,
    Run,
    components_register,
    django_ready,
    median,
    percentile,
    run_context,
    start_beat,
    start_target,
    start_worker,
    target_arrivals,
)

CONCURRENCY = 50

TRIGGER_SQL = """
CREATE TABLE IF NOT EXISTS bench_claims (
    component_id bigint, due_at timestamptz, claimed_at timestamptz
);
CREATE OR REPLACE FUNCTION bench_claim_log() RETURNS trigger AS $$
BEGIN
    INSERT INTO bench_claims VALUES (NEW.id, OLD.next_check_at, clock_timestamp());
    RETURN NULL;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS bench_claim_log ON components_component;
CREATE TRIGGER bench_claim_log AFTER UPDATE ON components_component FOR EACH ROW
    WHEN (NEW.claim_token IS NOT NULL
          AND NEW.claim_token IS DISTINCT FROM OLD.claim_token
          AND NEW.next_check_at IS DISTINCT FROM OLD.next_check_at)
    EXECUTE FUNCTION bench_claim_log();
"""
DROP_SQL = """
DROP TRIGGER IF EXISTS bench_claim_log ON components_component;
DROP FUNCTION IF EXISTS bench_claim_log();
DROP TABLE IF EXISTS bench_claims;
"""


# --- raw loop -----------------------------------------------------------------------
@dataclass
class RawFigures:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    # CPU microseconds per request of this process, PostgreSQL and the target.
    cpu_per_request: "Cpu"


async def _raw(run: Run, url: str, seconds: float) -> RawFigures:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
            except aiohttp.ClientError:
                errors += 1
            else:
                latencies.append(time.perf_counter() - started)

        async def loop(until: float) -> None:
            while time.perf_counter() < until:
                await one()

        await asyncio.gather(*(loop(time.perf_counter() + 1) for _ in range(50)))
        latencies.clear()
        split0 = cpu_now(run, None)
        began = time.perf_counter()
        end = began + seconds
        await asyncio.gather(*(loop(end) for _ in range(CONCURRENCY)))
        wall = time.perf_counter() - began
        split = cpu_now(run, None) - split0
    return RawFigures(
        len(latencies) / wall,
        median(latencies) * 1000,
        percentile(latencies, 0.99) * 1000,
        errors,
        split.per(len(latencies)),
    )


# --- the pipeline -------------------------------------------------------------------
class TickLoop(threading.Thread):
    """``components_dispatch_due`` every second, as beat's task would run it."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.done = threading.Event()

    def run(self) -> None:
        from django.db import connection
        from django.utils import timezone

        from apps.components.services import components_dispatch_due

        try:
            while not self.done.wait(1 - time.time() % 1):
                components_dispatch_due(now=timezone.now())
        finally:
            connection.close()


def script(text: str) -> None:
    """Run several statements (no placeholders)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(text)


def sql(statement: str, params: list[object] | None = None) -> list[tuple]:
    """Run ``statement`` (``%s`` placeholders, ``%%`` for a literal %); its rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params if params is not None else [])
        return cursor.fetchall() if cursor.description else []


def drop_instrumentation() -> None:
    with suppress(Exception):
        script(DROP_SQL)


def quiesce(timeout: float = 120) -> None:
    """Wait until no claim is outstanding (every enqueued batch was written)."""
    deadline = time.monotonic() + timeout
    while sql(
        "SELECT count(*) FROM components_component WHERE claim_token IS NOT NULL"
    )[0][0]:
        if time.monotonic() > deadline:
            raise RuntimeError("claims still outstanding")
        time.sleep(0.2)


def park() -> None:
    """Nothing due for a day; claims cleared; logs cleared."""
    sql(
        "UPDATE components_component SET next_check_at = now() + interval '1 day'"
        " WHERE slug LIKE 'bench-%%'"
    )


@dataclass
class Backlog:
    seconds_all_once: float
    results: int
    rate_overall: float
    rate_sustained: float
    arrivals: int
    worker_cpu: float
    machine_cpu: float
    # CPU microseconds per check of the worker, PostgreSQL and the target.
    cpu_per_check: "Cpu"


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores."""
    times = psutil.cpu_times()
    total = sum(times)
    return total - times.idle - getattr(times, "iowait", 0.0), total


def busy_percent(before: tuple[float, float]) -> float:
    """Machine CPU busy since ``before`` as % of all its cores (others' work too)."""
    busy, total = machine_busy()
    return (busy - before[0]) / max(total - before[1], 1e-9) * 100


@dataclass(frozen=True, slots=True)
class Cpu:
    """CPU seconds of the three sides: the client (the worker, or this process for
    the raw loop), PostgreSQL and the HTTP target."""

    client: float
    postgres: float
    target: float

    def __sub__(self, other: "Cpu") -> "Cpu":
        return Cpu(
            self.client - other.client,
            self.postgres - other.postgres,
            self.target - other.target,
        )

    def per(self, n: int) -> "Cpu":
        """Microseconds per one of ``n``."""
        scale = 1e6 / max(n, 1)
        return Cpu(self.client * scale, self.postgres * scale, self.target * scale)

    @property
    def total(self) -> float:
        return self.client + self.postgres + self.target


def cpu_now(run: Run, client: Proc | None) -> Cpu:
    assert run.target is not None  # noqa: S101 - started before any phase
    return Cpu(
        client.cpu_seconds() if client is not None else time.process_time(),
        run.postgres_cpu_seconds() or 0.0,
        run.target.cpu_seconds(),
    )


def backlog(run: Run, n: int, worker: Proc, target: str, timeout: float) -> Backlog:
    from datetime import timedelta

    from django.utils import timezone

    quiesce()
    target_arrivals(target)
    cpu0, machine0 = worker.cpu_seconds(), machine_busy()
    split0 = cpu_now(run, worker)
    t0 = timezone.now()
    began = time.monotonic()
    sql(
        "UPDATE components_component SET next_check_at = %s WHERE slug LIKE 'bench-%%'",
        [t0],
    )
    checked = 0
    while checked < n and time.monotonic() - began < timeout:
        time.sleep(0.1)
        checked = sql(
            "SELECT count(*) FROM components_componentstate WHERE last_checked_at >= %s",
            [t0],
        )[0][0]
    elapsed = time.monotonic() - began
    cpu, machine = worker.cpu_seconds() - cpu0, busy_percent(machine0)
    split = cpu_now(run, worker) - split0
    t1 = t0 + timedelta(seconds=elapsed)
    times = [
        row[0].timestamp()
        for row in sql(
            "SELECT checked_at FROM components_healthresult"
            " WHERE checked_at >= %s AND checked_at <= %s ORDER BY checked_at",
            [t0, t1],
        )
    ]
    low, high = times[len(times) // 10], times[len(times) * 9 // 10]
    sustained = (len(times) * 8 // 10) / (high - low) if high > low else float("nan")
    park()
    quiesce()
    return Backlog(
        elapsed if checked >= n else float("inf"),
        len(times),
        len(times) / elapsed,
        sustained,
        len(target_arrivals(target)),
        cpu / elapsed * 100,
        machine,
        split.per(len(times)),
    )


@dataclass
class Schedule:
    seconds: float
    results: int
    due: int
    start_lags: list[float]
    dispatch_lags: list[float]
    unclaimed: int
    unclaimed_worst: float
    unstarted: int
    worker_cpu: float
    machine_cpu: float


def schedule(ids: list[int], worker: Proc, target: str, seconds: float) -> Schedule:
    from datetime import timedelta

    from django.utils import timezone

    quiesce()
    sql("TRUNCATE bench_claims")
    target_arrivals(target)
    t0 = timezone.now()
    # Due times spread evenly over one interval, starting a second from now.
    sql(
        "UPDATE components_component SET next_check_at ="
        " %s + interval '1 second' + random() * make_interval(secs => interval_seconds)"
        " WHERE slug LIKE 'bench-%%'",
        [t0],
    )
    cpu0, machine0 = worker.cpu_seconds(), machine_busy()
    began = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - began
    cpu, machine = worker.cpu_seconds() - cpu0, busy_percent(machine0)
    end = t0 + timedelta(seconds=elapsed)
    arrivals = target_arrivals(target)
    results = sql(
        "SELECT count(*) FROM components_healthresult WHERE checked_at > %s"
        " AND checked_at <= %s",
        [t0, end],
    )[0][0]
    claims = sql(
        "SELECT component_id, extract(epoch FROM due_at),"
        " extract(epoch FROM claimed_at) FROM bench_claims"
        " WHERE claimed_at <= %s ORDER BY claimed_at",
        [end],
    )
    unclaimed_rows = sql(
        "SELECT extract(epoch FROM %s - next_check_at) FROM components_component"
        " WHERE slug LIKE 'bench-%%' AND claim_token IS NULL AND next_check_at <= %s",
        [end, end],
    )
    by_component: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for pk, due, claimed in claims:
        by_component[pk].append((float(claimed), float(due)))
    start_lags = []
    started_claims = set()
    end_ts = end.timestamp()
    for index, at in arrivals:
        if at > end_ts:
            continue
        history = by_component.get(ids[index], [])
        k = bisect.bisect_right(history, (at, float("inf"))) - 1
        if k >= 0:
            start_lags.append(at - history[k][1])
            started_claims.add((ids[index], k))
    dispatch_lags = [float(claimed) - float(due) for _, due, claimed in claims]
    unstarted = len(claims) - len(started_claims)
    return Schedule(
        elapsed,
        results,
        len(claims) + len(unclaimed_rows),
        start_lags,
        dispatch_lags,
        len(unclaimed_rows),
        max((float(r[0]) for r in unclaimed_rows), default=0.0),
        unstarted,
        cpu / elapsed * 100,
        machine,
    )


# --- report -------------------------------------------------------------------------
# The least PostgreSQL work a check through any such pipeline needs, in bare SQL
# per batch: claim the batch (next run, claim token), insert the results, update
# the states, release the claim. No locking read, transition, metric or Celery.
FLOOR_SQL = [
    "UPDATE components_component SET next_check_at = now() + interval '1 day',"
    " claimed_until = now() + interval '1 min', claim_token = %(token)s"
    " WHERE id = ANY(%(ids)s)",
    "INSERT INTO components_healthresult (status, latency_ms, message, details,"
    " checked_at, in_maintenance, trace_id, component_id)"
    " SELECT 'healthy', 1.5, 'HTTP 200', '{\"status_code\": 200}', now(), false,"
    " '', unnest(%(ids)s::bigint[])",
    "UPDATE components_componentstate SET consecutive_successes ="
    " consecutive_successes + 1, last_latency_ms = 1.5, last_checked_at = now()"
    " WHERE component_id = ANY(%(ids)s)",
    "UPDATE components_component SET claimed_until = NULL, claim_token = NULL"
    " WHERE id = ANY(%(ids)s)",
]
FLOOR_BATCH = 100  # components_dispatch_due's batch size


def database_floor(ids: list[int], turns: int = 3) -> float:
    """Best of ``turns``: CPU microseconds of the PostgreSQL backend per check
    for FLOOR_SQL over every component, a batch per transaction."""
    import uuid

    from django.db import connection, transaction

    park()
    quiesce()
    backend = psutil.Process(sql("SELECT pg_backend_pid()")[0][0])
    best = float("inf")
    for _ in range(turns):
        before = sum(backend.cpu_times()[:2])
        for low in range(0, len(ids), FLOOR_BATCH):
            params = {"ids": ids[low : low + FLOOR_BATCH], "token": uuid.uuid4()}
            with transaction.atomic(), connection.cursor() as cursor:
                for statement in FLOOR_SQL:
                    cursor.execute(statement, params)
        best = min(best, sum(backend.cpu_times()[:2]) - before)
    park()
    return best / len(ids) * 1e6


def _row(subject: str, rate: float, raw: float, worker: float, machine: float) -> str:
    return (
        f"{subject:40}{rate:>9.0f}{rate / raw:>7.2f}{worker:>10.0f} %{machine:>10.0f} %"
    )


def report(
    args: argparse.Namespace,
    raw: RawFigures,
    passes: list[Backlog],
    sched: Schedule,
    floor: float,
) -> None:
    tick = "celery beat (project schedule)" if args.tick == "beat" else "loop thread"
    n = args.components
    print(f"{n} HTTP components, 30 s interval; 1 worker (prefork -c 2); tick: {tick}")
    print("worker CPU: % of one core (2 cores = 200 %); machine: % of both, all users")
    print()
    print(f"{'subject':40}{'checks/s':>9}{'x raw':>7}{'worker':>12}{'machine':>12}")
    print(f"{'raw aiohttp loop, 50 in flight':40}{raw.rate:>9.0f}{1.0:>7.2f}")
    for k, back in enumerate(passes, 1):
        label = " (first checks)" if k == 1 else ""
        print(
            _row(
                f"backlog pass {k}{label}, 10-90 %",
                back.rate_sustained,
                raw.rate,
                back.worker_cpu,
                back.machine_cpu,
            )
        )
    rate = sched.results / sched.seconds
    print(_row("on schedule", rate, raw.rate, sched.worker_cpu, sched.machine_cpu))
    print()
    print("CPU per check (raw loop: per request), microseconds; the ceiling is the")
    print("rate at which this machine's 2 cores would be busy with nothing else")
    print(
        f"{'subject':40}{'client':>8}{'postgres':>10}{'target':>8}{'total':>8}"
        f"{'ceiling/s':>11}{'x raw':>7}"
    )
    raw_ceiling = 2e6 / raw.cpu_per_request.total
    rows = [("raw aiohttp loop (client = this process)", raw.cpu_per_request)]
    rows += [(f"backlog pass {k} (client = worker)", back.cpu_per_check)
             for k, back in enumerate(passes, 1)]  # fmt: skip
    for subject, split in rows:
        ceiling = 2e6 / split.total
        print(
            f"{subject:40}{split.client:>8.0f}{split.postgres:>10.0f}"
            f"{split.target:>8.0f}{split.total:>8.0f}{ceiling:>11.0f}"
            f"{ceiling / raw_ceiling:>7.2f}"
        )
    budget = (1 / 0.7 - 1) * raw.cpu_per_request.total
    print(
        f"PostgreSQL floor per check (bare SQL: claim, result insert, state update,"
        f" release; batches of {FLOOR_BATCH}): {floor:.0f} us of its backend's CPU"
    )
    print(
        f"budget for 0.7 x raw: all a check may add to a bare request's"
        f" {raw.cpu_per_request.total:.0f} us is {budget:.0f} us"
    )
    print()
    print(
        f"raw loop: p50 {raw.p50_ms:.1f} ms, p99 {raw.p99_ms:.1f} ms,"
        f" {raw.errors} errors, {args.raw_seconds:g} s"
    )
    for k, back in enumerate(passes, 1):
        print(
            f"backlog pass {k}: all {n} checked once after {back.seconds_all_once:.1f} s"
            f" ({back.rate_overall:.0f} checks/s from setting them due);"
            f" {back.results} results, {back.arrivals} requests at the target"
        )
    print(
        f"on schedule, {sched.seconds:.0f} s: {sched.results} results"
        f" ({n / 30:.0f}/s offered), {sched.due} checks came due"
    )
    ms = [lag * 1000 for lag in sched.start_lags]
    dms = [lag * 1000 for lag in sched.dispatch_lags]
    print(
        f"  due -> start (request at target), {len(ms)} checks:"
        f" p50 {median(ms):.0f} ms  p99 {percentile(ms, 0.99):.0f} ms"
        f"  max {max(ms, default=float('nan')):.0f} ms"
    )
    print(
        f"  due -> claim, {len(dms)} claims:"
        f" p50 {median(dms):.0f} ms  p99 {percentile(dms, 0.99):.0f} ms"
        f"  max {max(dms, default=float('nan')):.0f} ms"
    )
    print(
        f"  at the end: {sched.unclaimed} due but unclaimed (oldest"
        f" {sched.unclaimed_worst:.1f} s late), {sched.unstarted} claimed, not started"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--components", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--raw-seconds", type=float, default=10.0)
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--tick", choices=["beat", "loop"], default="beat")
    parser.add_argument("--backlog-timeout", type=float, default=600.0)
    args = parser.parse_args()
    with run_context() as run:
        django_ready()
        target = start_target(run)
        ids = components_register(args.components, target)
        script(TRIGGER_SQL)
        run.stack.callback(drop_instrumentation)
        worker = start_worker(run)
        if args.tick == "beat":
            start_beat(run)
        else:
            ticker = TickLoop()
            ticker.start()
            run.stack.callback(ticker.done.set)
        raw = asyncio.run(_raw(run, f"{target}/c/0", args.raw_seconds))
        print(f"raw loop: {raw.rate:.0f} req/s", flush=True)
        passes = []
        for k in range(args.passes):
            passes.append(
                backlog(run, args.components, worker, target, args.backlog_timeout)
            )
            print(f"backlog {k + 1}: {passes[-1].rate_sustained:.0f} /s", flush=True)
        sched = schedule(ids, worker, target, args.seconds)
        floor = database_floor(ids)
        print()
        report(args, raw, passes, sched, floor)


if __name__ == "__main__":
    main()
