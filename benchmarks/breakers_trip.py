"""Fleet-wide trip latency: 4 processes on one breaker, one trips it, time until all 4
refuse calls; ours side by side with pybreaker on its Redis storage.

    PYTHONPATH=. .venv/bin/python benchmarks/breakers_trip.py [--rounds N]

Uses REDIS_URL when set, else starts an embedded Valkey for the run. Each round:
three watchers call through the breaker every ``--pause`` seconds, the tripper fails
calls until its breaker opens (t0), and each watcher reports its first refused call;
the latency is the last refusal minus t0 (CLOCK_MONOTONIC is one clock for every
process). Then the breaker is closed fleet-wide and every process sees it closed.
"""

import argparse
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pybreaker
import redis

from apps.breakers.config import BreakerConfig, State
from apps.breakers.fleet import Fleet
from benchmarks.breakers_common import percentile, redis_url

NAME = "trip"
FAIL_MAX = 5  # failures that trip it: pybreaker's fail_max, our count window
CONFIG = BreakerConfig(
    minimum_calls=FAIL_MAX,
    window_size=FAIL_MAX,
    failure_rate_threshold=100,
    wait_duration_ms=600_000,
    max_wait_duration_ms=600_000,
)

# One process of the fleet, driven by lines on stdin: "watch", "trip", "closed".
CHILD = """
import os, sys, time

LIB, URL, PREFIX = os.environ["LIB"], os.environ["REDIS_URL"], os.environ["PREFIX"]
PAUSE = float(os.environ["PAUSE"])


class Down(Exception):
    pass


def down():
    raise Down


def ok():
    return None


if LIB == "ours":
    from apps.breakers.agent import Agent
    from apps.breakers.exceptions import BreakerOpenError as Refused
    from apps.breakers.fleet import Fleet
    from apps.breakers.guard import Guard

    dep = Guard(Agent(Fleet(URL, PREFIX), persist=False).breaker("trip"), None)
    call_ok, call_down = dep(ok), dep(down)
    breaker = dep._breaker
    is_open = lambda: breaker.state == "OPEN"
    is_closed = lambda: breaker.state == "CLOSED"
else:
    import pybreaker, redis

    from pybreaker import CircuitBreakerError as Refused

    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED, redis.Redis.from_url(URL), namespace=PREFIX + "trip"
    )
    cb = pybreaker.CircuitBreaker(
        fail_max=int(os.environ["FAIL_MAX"]), reset_timeout=600, state_storage=storage
    )
    call_ok, call_down = (lambda: cb.call(ok)), (lambda: cb.call(down))
    is_open = lambda: cb.current_state == "open"
    is_closed = lambda: cb.current_state == "closed"

print("ready", flush=True)
for line in sys.stdin:
    if line.startswith("watch"):
        while True:
            try:
                call_ok()
            except Refused:
                print("refused", time.monotonic(), flush=True)
                break
            time.sleep(PAUSE)
    elif line.startswith("trip"):
        while not is_open():
            try:
                call_down()
            except (Down, Refused):
                pass
        print("refused", time.monotonic(), flush=True)
    elif line.startswith("closed"):
        while not is_closed():
            time.sleep(0.0005)
        print("closed", flush=True)
"""


class Child:
    def __init__(self, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", CHILD],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, command: str) -> None:
        stdin = self.popen.stdin
        if stdin is None:
            raise RuntimeError("started without a pipe")
        stdin.write(command + "\n")
        stdin.flush()

    def expect(self, word: str) -> list[str]:
        """The next line starting with ``word``; log lines in between are skipped."""
        stdout = self.popen.stdout
        if stdout is None:
            raise RuntimeError("started without a pipe")
        while line := stdout.readline():
            if line.startswith(word):
                return line.split()
        raise RuntimeError(f"the child exited before saying {word!r}")


@contextmanager
def fleet_of_four(
    lib: str, url: str, prefix: str, pause: float
) -> Iterator[list[Child]]:
    env = dict(os.environ, LIB=lib, REDIS_URL=url, PREFIX=prefix, PAUSE=str(pause))
    env.update(FAIL_MAX=str(FAIL_MAX), PYTHONPATH=os.getcwd())
    children = [Child(env) for _ in range(4)]
    try:
        for child in children:
            child.expect("ready")
        yield children
    finally:
        for child in children:
            child.popen.kill()
            child.popen.wait()


def run_rounds(lib: str, url: str, rounds: int, pause: float) -> list[float]:
    """Trip latencies in milliseconds, one per round."""
    prefix = f"bench{uuid.uuid4().hex[:6]}:"
    fleet = Fleet(url, prefix)
    fleet.store_config(NAME, CONFIG)
    closer = pybreaker.CircuitBreaker(
        state_storage=pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, redis.Redis.from_url(url), namespace=prefix + NAME
        )
    )
    latencies = []
    with fleet_of_four(lib, url, prefix, pause) as children:
        tripper, watchers = children[0], children[1:]
        for _ in range(rounds):
            for watcher in watchers:
                watcher.send("watch")
            tripper.send("trip")
            t0 = float(tripper.expect("refused")[1])
            last = max(float(w.expect("refused")[1]) for w in watchers)
            latencies.append((last - t0) * 1000)
            if lib == "ours":
                fleet.set_state(NAME, CONFIG, State.CLOSED, "benchmark round")
            else:
                closer.close()
            for child in children:
                child.send("closed")
            for child in children:
                child.expect("closed")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--pause", type=float, default=0.0005)
    args = parser.parse_args()
    with redis_url() as url:
        results = [
            (label, run_rounds(lib, url, args.rounds, args.pause))
            for label, lib in (("ours", "ours"), ("pybreaker, Redis", "pybreaker"))
        ]
    print(f"trip latency, 4 processes, {args.rounds} rounds, a call every ", end="")
    print(f"{args.pause * 1000:g} ms per watcher")
    print(f"{'':<20}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for label, values in results:
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"{label:<20}{p50:>9.2f}{p99:>9.2f}{max(values):>9.2f}")


if __name__ == "__main__":
    main()
