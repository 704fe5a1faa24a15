"""Closed-path cost per call of ``breakers.guard`` next to pybreaker and a bare call.

    PYTHONPATH=. .venv/bin/python benchmarks/breakers_guard.py [--calls N]

Uses REDIS_URL when set, else starts an embedded Valkey for the run. Our breaker
runs with its fleet agent connected (state in Redis, outcomes flushed in batches);
pybreaker runs with in-memory state and with its Redis storage.
"""

import argparse
import asyncio
import time
import timeit
from collections.abc import Callable

import pybreaker
import redis

from apps.breakers.agent import Agent
from apps.breakers.fleet import Fleet
from apps.breakers.guard import Guard
from benchmarks.breakers_common import redis_url


def per_call(stmt: Callable[[], object], calls: int) -> float:
    """Best of five runs, in nanoseconds per call."""
    return min(timeit.repeat(stmt, number=calls, repeat=5)) / calls * 1e9


def per_call_async(make: Callable[[], object], calls: int) -> float:
    async def loop() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            await make()  # type: ignore[misc]
        return time.perf_counter() - start

    return min(asyncio.run(loop()) for _ in range(5)) / calls * 1e9


def bench(url: str, calls: int) -> list[tuple[str, float]]:
    agent = Agent(Fleet(url, "bench:"), persist=False)
    dep = agent.breaker("bench")

    def bare() -> int:
        return 1

    async def bare_async() -> int:
        return 1

    guarded = Guard(dep, None)(bare)
    guarded_async = Guard(dep, None)(bare_async)

    def with_block() -> int:
        with Guard(dep, None):
            return bare()

    memory = pybreaker.CircuitBreaker()
    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED, redis.Redis.from_url(url), namespace="bench"
    )
    on_redis = pybreaker.CircuitBreaker(state_storage=storage)
    slow_calls = max(calls // 100, 200)
    try:
        return [
            ("bare call", per_call(bare, calls)),
            ("guard (decorator)", per_call(guarded, calls)),
            ("guard (with block)", per_call(with_block, calls)),
            ("pybreaker, in memory", per_call(lambda: memory.call(bare), calls)),
            (
                "pybreaker, Redis storage",
                per_call(lambda: on_redis.call(bare), slow_calls),
            ),
            ("bare async call", per_call_async(bare_async, calls)),
            ("guard (async decorator)", per_call_async(guarded_async, calls)),
        ]
    finally:
        agent.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    calls = parser.parse_args().calls
    with redis_url() as url:
        results = bench(url, calls)
    bare_ns = results[0][1]
    print(f"{'closed path, per call':<28}{'ns':>10}{'µs':>9}{'x bare':>9}")
    for label, ns in results:
        print(f"{label:<28}{ns:>10.0f}{ns / 1000:>9.3f}{ns / bare_ns:>9.1f}")


if __name__ == "__main__":
    main()
