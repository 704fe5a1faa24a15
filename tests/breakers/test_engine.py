"""The state machine, checked against resilience4j's documented behaviour."""

import pytest

from apps.breakers.agent import Agent
from apps.breakers.config import BreakerConfig, State, config_validate
from apps.breakers.engine import LocalBreaker
from apps.breakers.exceptions import BreakerOpenError
from apps.breakers.fleet import Fleet
from apps.breakers.guard import Guard
from apps.core.exceptions import ValidationFailed
from tests.breakers.conftest import breaker
from tests.breakers.helpers import fail, fleet_state, succeed
from tests.procs import wait_until


def test_breaker__failures_before_minimum_calls__stays_closed_then_opens(agent):
    dep = breaker(agent, minimum_calls=4, window_size=10, failure_rate_threshold=50)
    for _ in range(3):
        fail(dep)
    assert dep.state is State.CLOSED

    fail(dep)

    assert dep.state is State.OPEN
    with pytest.raises(BreakerOpenError) as refused:
        succeed(dep)
    assert refused.value.retry_after > 0
    wait_until(lambda: fleet_state(agent) == "OPEN", timeout=5, what="fleet OPEN")


def test_breaker__rate_below_threshold__stays_closed(agent):
    dep = breaker(agent, minimum_calls=4, window_size=4, failure_rate_threshold=50)
    for _ in range(3):
        succeed(dep)

    fail(dep)  # 25% of 4 calls

    assert dep.state is State.CLOSED
    assert dep.local_view()[1] == (4, 1, 0)


def test_breaker__count_window_smaller_than_minimum__window_size_is_the_minimum(
    agent,
):
    dep = breaker(agent, minimum_calls=100, window_size=3)
    for _ in range(3):
        fail(dep)
    assert dep.state is State.OPEN


def test_breaker__slow_calls_over_threshold__opens_on_slow_call_rate(agent):
    dep = breaker(
        agent,
        minimum_calls=2,
        window_size=2,
        slow_call_duration_ms=1000,
        slow_call_rate_threshold=100,
    )
    dep.record(dep.acquire(), 1.5, False)
    assert dep.state is State.CLOSED

    dep.record(dep.acquire(), 2.0, False)

    assert dep.state is State.OPEN
    wait_until(lambda: fleet_state(agent) == "OPEN", timeout=5, what="fleet OPEN")


def test_breaker__ignored_exceptions__do_not_count(agent):
    dep = breaker(
        agent,
        minimum_calls=2,
        window_size=2,
        ignore_exceptions=["builtins.KeyError"],
    )
    for _ in range(5):
        fail(dep, KeyError("no such key"))
    assert dep.state is State.CLOSED
    assert dep.local_view()[1] == (0, 0, 0)


def test_breaker__record_exceptions_set__only_those_are_failures(agent):
    dep = breaker(
        agent,
        minimum_calls=2,
        window_size=2,
        failure_rate_threshold=100,
        record_exceptions=["builtins.TimeoutError"],
    )
    fail(dep, ValueError("bad input"))
    fail(dep, ValueError("bad input"))
    assert dep.state is State.CLOSED

    fail(dep, TimeoutError())
    fail(dep, TimeoutError())

    assert dep.state is State.OPEN


def test_breaker__time_window__opens_on_failures_in_the_last_seconds(agent):
    dep = breaker(agent, window_type="time", window_size=10, minimum_calls=3)
    fail(dep)
    fail(dep)
    assert dep.state is State.CLOSED
    fail(dep)
    assert dep.state is State.OPEN


def test_breaker__calls_spread_over_processes__fleet_window_opens_everywhere(agent):
    fleet = Fleet(agent.fleet.url, agent.fleet.prefix)
    other = Agent(fleet, interval=0.02, persist=False)
    try:
        config = {"minimum_calls": 4, "window_size": 10}
        here, there = breaker(agent, **config), breaker(other, **config)
        fail(here)
        fail(here)
        fail(there)
        fail(there)  # each process alone is below the minimum of 4

        wait_until(
            lambda: here.state is State.OPEN and there.state is State.OPEN,
            timeout=5,
            what="both processes to adopt the fleet's OPEN",
        )
    finally:
        other.stop()
    assert fleet_state(agent) == "OPEN"


def _opened(agent, **config):
    dep = breaker(agent, minimum_calls=2, window_size=2, **config)
    fail(dep)
    fail(dep)
    wait_until(lambda: dep.gen > 0, timeout=5, what="the fleet's OPEN adopted")
    return dep


def _permit(dep):
    try:
        return dep.acquire()
    except BreakerOpenError:
        return None


def test_breaker__half_open__admits_exactly_the_permitted_calls_then_closes(agent):
    dep = _opened(agent, wait_duration_ms=100, permitted_calls_half_open=3)
    first = wait_until(lambda: _permit(dep), timeout=5, what="wait in OPEN to end")
    epochs = [first, dep.acquire(), dep.acquire()]
    assert dep.state is State.HALF_OPEN
    with pytest.raises(BreakerOpenError):
        dep.acquire()

    for epoch in epochs:
        dep.record(epoch, 0.0, False)

    wait_until(lambda: dep.state is State.CLOSED, timeout=5, what="CLOSED")
    assert fleet_state(agent) == "CLOSED"


def test_breaker__half_open_calls_fail__opens_again(agent):
    dep = _opened(agent, wait_duration_ms=100, permitted_calls_half_open=2)
    epochs = [wait_until(lambda: _permit(dep), timeout=5), dep.acquire()]

    dep.record(epochs[0], 0.0, True)
    dep.record(epochs[1], 0.0, False)

    wait_until(lambda: dep.state is State.OPEN, timeout=5, what="OPEN again")
    assert fleet_state(agent) == "OPEN"


def test_breaker__half_open_call_ignored__its_permit_is_released(agent):
    dep = _opened(
        agent,
        wait_duration_ms=100,
        permitted_calls_half_open=1,
        ignore_exceptions=["builtins.KeyError"],
    )
    epoch = wait_until(lambda: _permit(dep), timeout=5)

    dep.record(epoch, 0.0, dep.classify(KeyError("x")))

    again = wait_until(lambda: _permit(dep), timeout=5, what="the released permit")
    dep.record(again, 0.0, False)
    wait_until(lambda: dep.state is State.CLOSED, timeout=5, what="CLOSED")


def test_breaker__forced_open__refuses_calls_until_released(agent):
    dep = breaker(agent, wait_duration_ms=1)
    succeed(dep)

    reply = agent.fleet.set_state("dep", dep.config, State.FORCED_OPEN, "test")
    agent.adopt_now("dep", reply)

    assert reply.from_state == "CLOSED"
    with pytest.raises(BreakerOpenError) as refused:
        succeed(dep)
    assert refused.value.state == "FORCED_OPEN"
    assert fleet_state(agent) == "FORCED_OPEN"


def test_breaker__disabled__failures_never_open_it(agent):
    dep = breaker(agent, minimum_calls=2, window_size=2)
    agent.fleet.set_state("dep", dep.config, State.DISABLED, "test")
    wait_until(lambda: dep.state is State.DISABLED, timeout=5, what="pushed state")

    for _ in range(10):
        fail(dep)

    assert dep.state is State.DISABLED
    assert fleet_state(agent) == "DISABLED"


def test_breaker__opened_again_and_again__wait_grows_exponentially_to_the_cap(agent):
    config = BreakerConfig(
        wait_duration_ms=1000, wait_multiplier=2, max_wait_duration_ms=3000
    )
    waits = [
        agent.fleet.set_state("dep", config, State.OPEN, "test").wait_ms
        for _ in range(4)
    ]
    assert waits == [1000, 2000, 3000, 3000]


def test_config_validate__bad_values__names_each_field():
    config = BreakerConfig(
        window_type="sliding",
        failure_rate_threshold=0,
        wait_duration_ms=5000,
        max_wait_duration_ms=1000,
        record_exceptions=("builtins.NotAThing",),
        max_wait_in_half_open_ms=-1,
    )
    with pytest.raises(ValidationFailed) as failed:
        config_validate(config)
    assert set(failed.value.fields) == {
        "window_type",
        "failure_rate_threshold",
        "max_wait_duration_ms",
        "record_exceptions.0",
        "max_wait_in_half_open_ms",
    }


def _half_open_config(max_wait_ms: int) -> BreakerConfig:
    return BreakerConfig(
        wait_duration_ms=1,
        max_wait_duration_ms=1,
        permitted_calls_half_open=1,
        max_wait_in_half_open_ms=max_wait_ms,
    )


def _half_open_holding_the_permit(agent, config):
    """The fleet HALF_OPEN with its only permit taken (by a caller that never ends)."""
    agent.fleet.set_state("dep", config, State.OPEN, "test")
    wait_until(
        lambda: agent.fleet.permit("dep", config).extra, timeout=5, what="the permit"
    )
    return agent.fleet.read_states(["dep"])["dep"]


def test_fleet__half_open_permit_never_returned__opens_again_after_the_max_wait(
    agent,
):
    config = _half_open_config(max_wait_ms=50)
    half_open = _half_open_holding_the_permit(agent, config)

    reply = wait_until(
        lambda: (
            (r := agent.fleet.permit("dep", config)).from_state == "HALF_OPEN" and r
        ),
        timeout=5,
        what="the fleet to leave HALF_OPEN",
    )

    assert reply.state is State.OPEN
    assert reply.reason == "half-open calls not completed in 50 ms"
    reopened = agent.fleet.read_states(["dep"])["dep"]
    assert int(reopened["opened_at"]) - int(half_open["since"]) >= 50


def test_fleet__half_open_max_wait_zero__waits_for_the_permitted_calls(agent):
    config = _half_open_config(max_wait_ms=0)
    half_open = _half_open_holding_the_permit(agent, config)
    since_ms = int(half_open["since"])
    wait_until(
        lambda: _redis_ms(agent) >= since_ms + 100,
        timeout=5,
        what="100 ms in HALF_OPEN on Redis's clock",
    )

    reply = agent.fleet.permit("dep", config)

    assert (reply.state, reply.from_state, reply.extra) == (State.HALF_OPEN, "", 0)


def _redis_ms(agent) -> int:
    seconds, micros = agent.fleet.client.time()
    return seconds * 1000 + micros // 1000


def test_breaker__redis_unreachable_and_half_open_permit_held__reopens_locally():
    alone = Agent(Fleet("redis://127.0.0.1:1/0", "t:"), interval=0.02, persist=False)
    config = {**_half_open_config(50).as_dict(), "minimum_calls": 1, "window_size": 1}
    try:
        dep = alone.breaker("dep")
        dep.apply_config(BreakerConfig.from_mapping(config))
        fail(dep)
        wait_until(lambda: _permit(dep) is not None, timeout=5, what="a permit")
        half_open_at = dep.phase_at

        wait_until(
            lambda: _refused_state(dep) == State.OPEN, timeout=5, what="OPEN again"
        )
    finally:
        alone.stop()
    assert alone.health().degraded
    assert dep.local_only
    assert dep.phase_at - half_open_at >= 0.05


def _refused_state(dep) -> str:
    try:
        dep.record(dep.acquire(), 0.0, None)
    except BreakerOpenError as exc:
        return exc.state
    return ""


def _unsynced(agent, **config) -> LocalBreaker:
    """A breaker of ``agent`` whose threads never run: its batches stay here."""
    return LocalBreaker("dep", BreakerConfig.from_mapping(config), agent)


def test_breaker__successes_on_a_full_clean_window__skip_the_window_but_count(agent):
    dep = _unsynced(agent, minimum_calls=4, window_size=4, failure_rate_threshold=75)
    for _ in range(4):
        succeed(dep)
    assert dep.quiet_epoch == dep.epoch

    for _ in range(6):
        Guard(dep, None)(lambda: None)()

    assert dep.take_batch()[0][1] == 10
    assert dep.local_view() == (State.CLOSED, (4, 0, 0))
    fail(dep)
    assert dep.quiet_epoch == -1
    fail(dep)
    succeed(dep)
    assert dep.state is State.CLOSED  # 2 of 4
    fail(dep)
    assert dep.state is State.OPEN  # 3 of 4: the ring kept its order


def test_breaker__quiet_success_of_an_earlier_phase__is_not_counted(agent):
    dep = _unsynced(agent, minimum_calls=2, window_size=2)
    succeed(dep)
    succeed(dep)
    epoch = dep.acquire()
    reply = agent.fleet.set_state("dep", dep.config, State.CLOSED, "reset")

    dep.adopt(reply)
    dep.succeeded(epoch, 0.0)

    assert dep.take_batch()[0][1] == 0
    assert dep.local_view() == (State.CLOSED, (0, 0, 0))


def test_breaker__slow_success_on_a_quiet_window__counts_as_slow(agent):
    dep = _unsynced(
        agent,
        minimum_calls=2,
        window_size=2,
        slow_call_duration_ms=1000,
        slow_call_rate_threshold=50,
    )
    succeed(dep)
    succeed(dep)

    dep.succeeded(dep.acquire(), 1.5)

    assert dep.state is State.OPEN
    assert "slow-call rate" in dep.proposal


def test_breaker__time_window__never_takes_the_quiet_path(agent):
    dep = _unsynced(agent, window_type="time", window_size=10, minimum_calls=2)
    for _ in range(3):
        succeed(dep)
    assert dep.quiet_epoch == -1
    assert dep.local_view()[1] == (3, 0, 0)
