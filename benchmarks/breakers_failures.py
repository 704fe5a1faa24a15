"""Breakers under failures: throughput with half the calls failing, and how fast a
failure burst opens the breaker; ours side by side with pybreaker.

    PYTHONPATH=. .venv/bin/python benchmarks/breakers_failures.py [--calls N]

Uses REDIS_URL when set, else starts an embedded Valkey for the run. Our breaker has
its fleet agent connected. Throughput: every other call raises, caught by the caller,
through a decorated function; the thresholds keep both breakers closed (ours 60% on
resilience4j's count window of 100, pybreaker counts consecutive failures). A second
row measures refusals of an open breaker. Burst: after a full window of successes
every call fails; we count the calls and time until this process refuses (local
OPEN) and until the fleet's state in Redis is OPEN.
"""

import argparse
import contextlib
import statistics
import time
import uuid
from collections.abc import Callable

import pybreaker
import redis

from apps.breakers.agent import Agent
from apps.breakers.config import BreakerConfig, State
from apps.breakers.exceptions import BreakerOpenError
from apps.breakers.fleet import Fleet
from apps.breakers.guard import Guard
from benchmarks.breakers_common import redis_url

Refused = (BreakerOpenError, pybreaker.CircuitBreakerError)


class Down(Exception):
    """The failing dependency."""


def flaky() -> Callable[[], None]:
    """A function failing every other call."""
    calls = [0]

    def call() -> None:
        calls[0] += 1
        if calls[0] & 1:
            raise Down

    return call


def down() -> None:
    raise Down


def ok() -> None:
    return None


def calls_per_second(call: Callable[[], object], calls: int) -> float:
    """Best of five runs; raised failures and refusals are caught (and counted)."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            try:
                call()
            except (Down, *Refused):
                pass
        best = min(best, time.perf_counter() - start)
    return calls / best


def throughput(agent: Agent, url: str, calls: int) -> list[tuple[str, float]]:
    agent.fleet.store_config("half", BreakerConfig(failure_rate_threshold=60))
    ours = Guard(agent.breaker("half"), None)(flaky())
    memory = pybreaker.CircuitBreaker(fail_max=5)
    on_redis = pybreaker.CircuitBreaker(
        fail_max=5,
        state_storage=pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED,
            redis.Redis.from_url(url),
            namespace=f"bench{uuid.uuid4().hex[:6]}",
        ),
    )
    mem_flaky, redis_flaky = flaky(), flaky()
    opened = agent.breaker("opened")
    agent.fleet.set_state("opened", opened.config, State.FORCED_OPEN, "benchmark")
    open_memory = pybreaker.CircuitBreaker()
    open_memory.open()
    while opened.state is not State.FORCED_OPEN:
        time.sleep(0.001)
    few = max(calls // 100, 200)
    return [
        ("bare function, 50% failing", calls_per_second(flaky(), calls)),
        ("guard (decorator)", calls_per_second(ours, calls)),
        (
            "pybreaker, in memory",
            calls_per_second(lambda: memory.call(mem_flaky), calls),
        ),
        ("pybreaker, Redis", calls_per_second(lambda: on_redis.call(redis_flaky), few)),
        ("guard, open (refusing)", calls_per_second(Guard(opened, None)(ok), calls)),
        ("pybreaker, open", calls_per_second(lambda: open_memory.call(ok), calls)),
    ]


def burst_ours(agent: Agent, rounds: int) -> tuple[list[int], list[float], list[float]]:
    """Calls, ms to local OPEN and ms to fleet OPEN, per burst (default config)."""
    config = BreakerConfig()
    breaker = agent.breaker("burst")
    calls_ok, calls_down = Guard(breaker, None)(ok), Guard(breaker, None)(down)
    counts, local_ms, fleet_ms = [], [], []
    for _ in range(rounds):
        reply = agent.fleet.set_state("burst", config, State.CLOSED, "benchmark round")
        agent.adopt_now("burst", reply)
        for _ in range(config.window_size):
            calls_ok()
        count, start = 0, time.perf_counter()
        while breaker.state is State.CLOSED:
            count += 1
            with contextlib.suppress(Down):
                calls_down()
        local_ms.append((time.perf_counter() - start) * 1000)
        while agent.fleet.read_states(["burst"])["burst"].get("state") != "OPEN":
            pass
        fleet_ms.append((time.perf_counter() - start) * 1000)
        counts.append(count)
    return counts, local_ms, fleet_ms


def burst_pybreaker(rounds: int) -> tuple[list[int], list[float]]:
    """Calls and ms until pybreaker (in memory, fail_max=5) opens."""
    counts, elapsed = [], []
    for _ in range(rounds):
        breaker = pybreaker.CircuitBreaker(fail_max=5)
        for _ in range(100):
            breaker.call(ok)
        count, start = 0, time.perf_counter()
        while breaker.current_state == pybreaker.STATE_CLOSED:
            count += 1
            with contextlib.suppress(Down, pybreaker.CircuitBreakerError):
                breaker.call(down)
        elapsed.append((time.perf_counter() - start) * 1000)
        counts.append(count)
    return counts, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with redis_url() as url:
        agent = Agent(Fleet(url, f"bench{uuid.uuid4().hex[:6]}:"), persist=False)
        try:
            rows = throughput(agent, url, args.calls)
            counts, local_ms, fleet_ms = burst_ours(agent, args.rounds)
        finally:
            agent.stop()
    py_counts, py_ms = burst_pybreaker(args.rounds)

    print(f"{'throughput, 50% of calls failing':<36}{'calls/s':>12}{'µs/call':>9}")
    for label, rate in rows:
        print(f"{label:<36}{rate:>12,.0f}{1e6 / rate:>9.3f}")
    med = statistics.median
    print(f"\nfailure burst after 100 successes, median of {args.rounds}")
    print(f"{'':<36}{'calls':>7}{'ms to refuse':>14}{'ms fleet OPEN':>15}")
    line = f"{'ours (window 100, 50%)':<36}{med(counts):>7.0f}{med(local_ms):>14.3f}"
    print(f"{line}{med(fleet_ms):>15.3f}")
    print(f"{'pybreaker (fail_max=5)':<36}{med(py_counts):>7.0f}{med(py_ms):>14.3f}")


if __name__ == "__main__":
    main()
