"""Fleet-wide state with real processes and a Redis that goes away and comes back."""

import signal
import sys
import time
import uuid

import pytest

from apps.breakers.agent import Agent
from apps.breakers.config import State
from apps.breakers.exceptions import BreakerOpenError
from apps.breakers.fleet import Fleet
from opsconsole.embedded import EmbeddedValkey, free_port
from tests.breakers.conftest import breaker
from tests.breakers.helpers import fail, fleet_state, succeed
from tests.procs import Proc, child_env, wait_until

# A second process calling through breaker "dep" and printing when it is refused.
OBSERVER = """
import os, time
from apps.breakers.agent import Agent
from apps.breakers.exceptions import BreakerOpenError
from apps.breakers.fleet import Fleet
from apps.breakers.guard import Guard

agent = Agent(Fleet(os.environ["REDIS_URL"], os.environ["BREAKER_PREFIX"]), persist=False)
dep = agent.breaker("dep")
print("ready", flush=True)
while True:
    try:
        with Guard(dep, None):
            pass
    except BreakerOpenError:
        print("refused", time.time(), flush=True)
        break
    time.sleep(0.001)
"""

# A process that takes breaker "dep"'s half-open permit and hangs until killed.
HOLDER = """
import os, threading, time
from apps.breakers.agent import Agent
from apps.breakers.exceptions import BreakerOpenError
from apps.breakers.fleet import Fleet

agent = Agent(Fleet(os.environ["REDIS_URL"], os.environ["BREAKER_PREFIX"]), persist=False)
dep = agent.breaker("dep")
while True:
    try:
        dep.acquire()
    except BreakerOpenError:
        time.sleep(0.001)
        continue
    if dep.state == "HALF_OPEN":
        break
print("holding", flush=True)
threading.Event().wait()
"""


def _line(proc: Proc, word: str) -> list[str] | None:
    for line in proc.output().splitlines():
        if line.startswith(word):
            return line.split()
    return None


def _subscribers(fleet: Fleet) -> int:
    counts = fleet.client.pubsub_numsub(fleet.channel)
    return int(counts[0][1]) if counts else 0


@pytest.mark.slow
def test_breaker__opened_in_one_process__refuses_calls_in_another_within_a_second(
    agent, tmp_path
):
    dep = breaker(agent, minimum_calls=2, window_size=2)
    proc = Proc(
        "observer",
        [sys.executable, "manage.py", "shell", "-c", OBSERVER],
        child_env(BREAKER_PREFIX=agent.fleet.prefix),
        tmp_path / "observer.log",
    )
    try:
        wait_until(lambda: _line(proc, "ready"), timeout=60, what="observer start")
        wait_until(lambda: _subscribers(agent.fleet) >= 2, timeout=10)
        fail(dep)
        opened_at = time.time()  # the next failure trips it here
        fail(dep)
        refused = wait_until(
            lambda: _line(proc, "refused"), timeout=10, what=f"{proc.output()}"
        )
    finally:
        proc.stop()
    delay = float(refused[1]) - opened_at
    assert delay < 1.0, f"fleet-wide trip delay {delay * 1000:.1f} ms"


@pytest.mark.fault
def test_breaker__redis_stopped__protects_locally_then_reconciles_when_back(tmp_path):
    valkey = EmbeddedValkey(tmp_path / "valkey", free_port())
    valkey.start()
    agent = Agent(Fleet(valkey.url, "t:"), interval=0.02, persist=False)
    name = f"dep-{uuid.uuid4().hex[:6]}"
    try:
        dep = breaker(agent, name, minimum_calls=3, window_size=3)
        wait_until(lambda: _subscribers(agent.fleet) == 1, timeout=10)

        valkey.stop()
        wait_until(lambda: agent.health().degraded, timeout=10, what="degraded")
        for _ in range(3):
            fail(dep)
        assert dep.state is State.OPEN
        assert dep.local_only
        with pytest.raises(BreakerOpenError):
            succeed(dep)

        valkey.start()  # empty: the fleet forgot everything
        wait_until(
            lambda: not agent.health().degraded and not dep.local_only,
            timeout=15,
            what="reconnect",
        )
        assert fleet_state(agent, name) == "OPEN"
        assert dep.state is State.OPEN
        assert dep.gen == 1
    finally:
        agent.stop()
        valkey.stop()


def _permit(dep) -> int | None:
    try:
        return dep.acquire()
    except BreakerOpenError:
        return None


@pytest.mark.slow
def test_breaker__process_killed_holding_the_half_open_permit__fleet_recovers(
    agent, tmp_path
):
    dep = breaker(
        agent,
        wait_duration_ms=200,
        max_wait_duration_ms=200,
        permitted_calls_half_open=1,
        max_wait_in_half_open_ms=1500,
    )
    agent.fleet.set_state("dep", dep.config, State.OPEN, "test")
    proc = Proc(
        "holder",
        [sys.executable, "manage.py", "shell", "-c", HOLDER],
        child_env(BREAKER_PREFIX=agent.fleet.prefix),
        tmp_path / "holder.log",
    )
    try:
        wait_until(lambda: _line(proc, "holding"), timeout=60, what="the holder")
    finally:
        proc.stop(signal.SIGKILL)
    with pytest.raises(BreakerOpenError) as refused:
        dep.acquire()
    assert refused.value.state == "HALF_OPEN"

    epoch = wait_until(
        lambda: _permit(dep), timeout=10, what="a permit after the max wait"
    )
    dep.record(epoch, 0.0, False)

    wait_until(lambda: dep.state is State.CLOSED, timeout=5, what="CLOSED")
    assert fleet_state(agent) == "CLOSED"
