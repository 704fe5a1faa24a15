"""Propagation: a flag changed through the service, time until each of 4 other
processes evaluates the new value (ARCHITECTURE flow 4).

    PYTHONPATH=. .venv/bin/python benchmarks/flags_propagation.py [--changes N]

Each process sets up Django, evaluates the flag every millisecond and reports the
wall-clock time it first sees each new value. The clock starts just before the
service call (write, commit, Redis publish included). p50 and p99 are over all
(change, process) pairs after ``--warmup`` changes, whose delays are printed on their
own: the first changes after the processes start pay one-time costs (the writer's
first validations and writes, each process's first rebuild).
"""

import argparse
import multiprocessing
import statistics
import time
from multiprocessing.synchronize import Event

from benchmarks.flags_common import KEY, create_flag, django_setup, servers

PROCESSES = 4


def watcher(
    ready: Event, stop: Event, seen: "multiprocessing.Queue[tuple[bool, float]]"
) -> None:
    django_setup()
    import apps.flags

    ctx = {"targetingKey": "u", "plan": "enterprise", "country": "ch"}
    last = apps.flags.is_enabled(KEY, ctx)
    ready.set()
    while not stop.is_set():
        value = apps.flags.is_enabled(KEY, ctx)
        if value != last:
            seen.put((value, time.time()))
            last = value
        time.sleep(0.001)


def run(changes: int, warmup: int) -> tuple[list[float], list[float]]:
    django_setup()
    create_flag()
    from apps.core.models import AuditEvent
    from apps.flags.services import flag_toggle

    spawn = multiprocessing.get_context("spawn")
    stop, seen = spawn.Event(), spawn.Queue()
    readies = [spawn.Event() for _ in range(PROCESSES)]
    procs = [spawn.Process(target=watcher, args=(r, stop, seen)) for r in readies]
    for proc in procs:
        proc.start()
    for ready in readies:
        ready.wait(60)
    time.sleep(1)  # every subscriber connected
    delays: list[float] = []
    cold: list[float] = []
    enabled = True
    for number in range(warmup + changes):
        enabled = not enabled
        start = time.time()
        flag_toggle(
            key=KEY,
            enabled=enabled,
            actor=None,
            reason="",
            source=AuditEvent.Source.SYSTEM,
        )
        for _ in range(PROCESSES):
            value, at = seen.get(timeout=30)
            if value != enabled:
                raise RuntimeError("a process saw a value out of order")
            (cold if number < warmup else delays).append((at - start) * 1000)
        time.sleep(0.05)
    stop.set()
    for proc in procs:
        proc.join(10)
    return delays, cold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    with servers():
        measured, cold = run(args.changes, args.warmup)
    delays = sorted(measured)
    if cold:
        print(
            f"first {args.warmup} changes (cold), ms: {', '.join(f'{d:.0f}' for d in cold)}"
        )
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(f"{len(delays)} observations over {PROCESSES} processes")
    print(
        f"p50 {statistics.median(delays):.1f} ms  p99 {p99:.1f} ms  max {delays[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
