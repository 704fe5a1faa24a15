"""``/health``, ``/readyz`` and ``/livez`` latency, idle vs the scheduler at full load (#5).

    PYTHONPATH=. .venv/bin/python benchmarks/checks_probes.py \
        [--components 10000] [--seconds 30] [--load-interval 5] [--warmup 10]

Same setup as ``checks_pipeline.py`` (embedded servers unless DATABASE_URL /
REDIS_URL are set, an aiohttp target process, ONE Celery worker, prefork -c 2,
and celery beat with the project's schedule), plus ONE daphne serving the project
(DEBUG off). N HTTP components check the target every ``--load-interval`` seconds:
10,000 every 5 s asks for 2,000 checks/s, more than one worker does here, so the
worker is never idle while they are due (full load).

An aiohttp client on this side asks the three probes in turn, one request in flight
(a load balancer's or an orchestrator's pace, not a load test), for ``--seconds``:
first while no component is due (worker and beat running, idle), then, after
``--warmup`` s of load, while all are due. Before both, every component is checked
once (its first check: a new breaker and an unknown → healthy transition each),
so the load window sees the steady pipeline. ``/health`` is asked unauthenticated
(the overall status only, as probes ask). Reported per probe: p50 / p99 / max and
errors, with the checks/s the pipeline wrote during each window.

Benchmarks are not tests: this prints figures and asserts no limits.
"""

import argparse
import asyncio
import time

from benchmarks.checks_common import (
    components_register,
    django_ready,
    median,
    percentile,
    run_context,
    start_beat,
    start_daphne,
    start_target,
    start_worker,
)

PROBES = ["/health", "/readyz", "/livez"]
PAUSE = 0.02


async def probe(base: str, seconds: float) -> dict[str, tuple[list[float], int]]:
    import aiohttp

    found: dict[str, tuple[list[float], int]] = {path: ([], 0) for path in PROBES}
    async with aiohttp.ClientSession() as session:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for path in PROBES:
                latencies, errors = found[path]
                started = time.perf_counter()
                try:
                    async with session.get(base + path) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    found[path] = (latencies, errors + 1)
                await asyncio.sleep(PAUSE)
    return found


def results_between(start: object, end: object) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM components_healthresult"
            " WHERE checked_at > %s AND checked_at <= %s",
            [start, end],
        )
        return int(cursor.fetchone()[0])


def window(base: str, seconds: float) -> tuple[dict, float]:
    from django.utils import timezone

    start = timezone.now()
    began = time.monotonic()
    found = asyncio.run(probe(base, seconds))
    elapsed = time.monotonic() - began
    return found, results_between(start, timezone.now()) / elapsed


def set_due(*, now: bool) -> None:
    from django.db import connection

    when = "now()" if now else "now() + interval '1 day'"
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE components_component SET next_check_at = {when}")  # noqa: S608


def prime(count: int, timeout: float = 900) -> float:
    """Check every component once (first checks: new breakers, unknown → healthy
    transitions), so the load window measures the steady pipeline; the seconds."""
    from django.db import connection
    from django.utils import timezone

    started = timezone.now()
    began = time.monotonic()
    set_due(now=True)
    checked = 0
    while checked < count and time.monotonic() - began < timeout:
        time.sleep(0.5)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM components_componentstate"
                " WHERE last_checked_at >= %s",
                [started],
            )
            checked = int(cursor.fetchone()[0])
    set_due(now=False)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--components", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--load-interval", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=10.0)
    args = parser.parse_args()
    with run_context() as run:
        django_ready()
        target = start_target(run)
        components_register(args.components, target, interval=args.load_interval)
        start_worker(run)
        start_beat(run)
        _, base = start_daphne(run)
        asyncio.run(probe(base, 2))  # first requests: imports, pool
        print(f"primed in {prime(args.components):.0f} s", flush=True)
        time.sleep(5)  # the last batches
        idle, idle_rate = window(base, args.seconds)
        print(f"idle: {idle_rate:.0f} checks/s", flush=True)
        set_due(now=True)
        time.sleep(args.warmup)
        busy, busy_rate = window(base, args.seconds)
        set_due(now=False)
        print()
        print(
            f"{args.components} HTTP components every {args.load_interval} s;"
            " 1 worker (prefork -c 2) + beat; 1 daphne; one probe in flight,"
            f" {args.seconds:g} s per window"
        )
        print(f"pipeline during the window: idle {idle_rate:.0f} checks/s,")
        print(f"  full load {busy_rate:.0f} checks/s")
        print()
        head = f"{'probe':9}{'state':11}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}"
        print(head + f"{'max ms':>9}{'errors':>8}{'x idle p99':>12}")
        for path in PROBES:
            base_p99 = percentile(idle[path][0], 0.99)
            for label, found in (("idle", idle), ("full load", busy)):
                latencies, errors = found[path]
                p99 = percentile(latencies, 0.99)
                print(
                    f"{path:9}{label:11}{len(latencies):>6}{median(latencies):>9.1f}"
                    f"{p99:>9.1f}{max(latencies, default=float('nan')):>9.1f}"
                    f"{errors:>8}{p99 / base_p99:>12.1f}"
                )


if __name__ == "__main__":
    main()
