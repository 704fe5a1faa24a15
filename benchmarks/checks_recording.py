"""Result write throughput and the state machine's cost per result (#5).

    PYTHONPATH=. .venv/bin/python benchmarks/checks_recording.py [--runs 15]

Uses DATABASE_URL / REDIS_URL when set (a scratch database), else embedded
servers. Times the recording half of ``components_run_batch``:
``recording.results_record`` (lock the claimed components and their states, bulk
``HealthResult`` insert, the state machine, one ``UPDATE … FROM unnest`` for the
states, ``StateChange`` rows, claims released, commit, then live publishes and
transition listeners) on batches of 100 and 1,000 synthetic outcomes, side by side
with a bare ``HealthResult.objects.bulk_create`` of the same rows in a transaction
(the write floor) and the pure state machine (``state.state_next``) per call.

Two workloads: *steady* (healthy results for healthy components: no transition)
and *flapping* (thresholds 1/1, each result flips the state: every result is a
transition with its StateChange row, live publish and listeners). Each timed run
takes fresh components claimed under a new token; median of ``--runs``.

Benchmarks are not tests: this prints figures and asserts no limits.
"""

import argparse
import itertools
import time
import timeit
import uuid

from benchmarks.checks_common import (
    components_register,
    django_ready,
    median,
    run_context,
)

SIZES = [100, 1000]


def claim(ids: list[int]) -> uuid.UUID:
    from datetime import timedelta

    from django.utils import timezone

    from apps.components.models import Component

    token = uuid.uuid4()
    Component.objects.filter(id__in=ids).update(
        claim_token=token, claimed_until=timezone.now() + timedelta(minutes=5)
    )
    return token


def outcomes(ids: list[int], status: str) -> dict[int, object]:
    from apps.components.checkers.base import CheckOutcome

    return {
        pk: CheckOutcome(status, 4.2, "HTTP 200", {"status_code": 200}) for pk in ids
    }


def time_record(ids: list[int], status: str) -> float:
    from django.utils import timezone

    from apps.components.recording import results_record

    token = claim(ids)
    batch = outcomes(ids, status)
    started = time.perf_counter()
    results_record(claim_token=token, outcomes=batch, now=timezone.now())
    return time.perf_counter() - started


def time_bulk(ids: list[int]) -> float:
    from django.db import transaction
    from django.utils import timezone

    from apps.components.models import HealthResult

    now = timezone.now()
    started = time.perf_counter()
    with transaction.atomic():
        HealthResult.objects.bulk_create(
            HealthResult(
                component_id=pk,
                status="healthy",
                latency_ms=4.2,
                message="HTTP 200",
                details={"status_code": 200},
                checked_at=now,
            )
            for pk in ids
        )
    return time.perf_counter() - started


def state_machine_ns() -> float:
    from apps.components.state import Streak, state_next

    current = Streak("healthy", 0, 5)
    runs = 200_000
    best = min(
        timeit.repeat(
            lambda: state_next(
                current=current,
                status="healthy",
                failure_threshold=3,
                success_threshold=2,
                dependency_down=False,
            ),
            number=runs,
            repeat=5,
        )
    )
    return best / runs * 1e9


def flapping_setup(ids: list[int]) -> None:
    from apps.components.models import Component

    Component.objects.filter(id__in=ids).update(
        failure_threshold=1, success_threshold=1
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with run_context():
        django_ready()
        pool = components_register(max(SIZES) + sum(SIZES), "http://127.0.0.1:9")
        steady, rest = pool[: max(SIZES)], pool[max(SIZES) :]
        flapping = {}
        for size in SIZES:
            flapping[size], rest = rest[:size], rest[size:]
            flapping_setup(flapping[size])
            time_record(flapping[size], "healthy")
        # The first results make every state healthy (a transition from unknown).
        time_record(steady, "healthy")
        print(
            f"median of {args.runs} runs; each run a fresh claim; DEBUG off; the"
            " run's PostgreSQL and Valkey"
        )
        print()
        head = f"{'subject':34}{'batch':>6}{'ms/batch':>10}{'µs/result':>11}"
        print(head + f"{'results/s':>11}")
        for size in SIZES:
            flips = itertools.cycle(["unhealthy", "healthy"])
            rows = {
                "bulk_create HealthResult only": lambda s=size: time_bulk(steady[:s]),
                "results_record, steady": lambda s=size: time_record(
                    steady[:s], "healthy"
                ),
                "results_record, flapping": lambda s=size, f=flips: time_record(
                    flapping[s], next(f)
                ),
            }
            for subject, run in rows.items():
                run()  # warm-up
                times = [run() for _ in range(args.runs)]
                seconds = median(times)
                print(
                    f"{subject:34}{size:>6}{seconds * 1000:>10.1f}"
                    f"{seconds / size * 1e6:>11.0f}{size / seconds:>11.0f}"
                )
        print()
        print(
            f"state_next (pure state machine): {state_machine_ns():.0f} ns per result"
        )


if __name__ == "__main__":
    main()
