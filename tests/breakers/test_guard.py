"""``breakers.guard``: context manager and decorator, sync and async, fallback."""

import pickle

import pytest

from apps import breakers
from apps.breakers.agent import Agent
from apps.breakers.config import BreakerConfig, State
from apps.breakers.exceptions import BreakerOpenError
from apps.breakers.fleet import Fleet
from apps.breakers.guard import Guard
from apps.breakers.models import Breaker
from tests.breakers.conftest import breaker
from tests.breakers.helpers import Down, GatedRedis
from tests.procs import wait_until


def test_guard__decorated_function_fails__fallback_answers_and_failure_counts(agent):
    dep = breaker(agent, minimum_calls=2, window_size=2)

    @Guard(dep, lambda exc: f"fallback for {type(exc).__name__}")
    def fetch() -> str:
        raise Down("down")

    assert fetch() == "fallback for Down"
    assert fetch() == "fallback for Down"
    assert dep.state is State.OPEN
    assert fetch() == "fallback for BreakerOpenError"


def test_guard__decorated_without_fallback__raises_breaker_open_error(agent):
    dep = breaker(agent, minimum_calls=1, window_size=1, wait_duration_ms=5000)
    calls = []

    @Guard(dep, None)
    def fetch() -> None:
        calls.append(1)
        raise Down("down")

    with pytest.raises(Down):
        fetch()
    with pytest.raises(BreakerOpenError) as refused:
        fetch()
    assert calls == [1]
    assert 0 < refused.value.retry_after <= 5


def test_breaker_open_error__message_and_extra__read_back_and_survive_pickling():
    exc = BreakerOpenError("payments", State.OPEN, 2.34567)

    copy = pickle.loads(pickle.dumps(exc))  # noqa: S301 (our own bytes)

    for refused in (exc, copy):
        assert str(refused) == "Breaker payments is OPEN; retry after 2.3s."
        assert refused.message == str(refused)
        assert refused.code == "breaker_open"
        assert refused.status == 503
        assert refused.extra == {
            "breaker": "payments",
            "state": State.OPEN,
            "retry_after": 2.346,
        }


def test_guard__ignored_exception__propagates_past_the_fallback(agent):
    dep = breaker(agent, ignore_exceptions=["builtins.KeyError"])

    @Guard(dep, lambda exc: "fallback")
    def lookup() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        lookup()


async def test_guard__async_function_fails__failures_of_awaited_calls_count(agent):
    dep = breaker(agent, minimum_calls=3, window_size=3)

    @Guard(dep, None)
    async def fetch() -> None:
        raise Down("down")

    for _ in range(3):
        with pytest.raises(Down):
            await fetch()
    assert dep.state is State.OPEN


async def test_guard__async_fallback__is_awaited(agent):
    dep = breaker(agent, minimum_calls=1, window_size=1)

    async def fallback(exc: Exception) -> str:
        return "cached"

    @Guard(dep, fallback)
    async def fetch() -> str:
        raise Down("down")

    assert await fetch() == "cached"
    assert await fetch() == "cached"
    assert dep.state is State.OPEN


async def test_guard__async_with_and_success__counts_a_call(agent):
    dep = breaker(agent)
    async with Guard(dep, None):
        pass
    assert dep.local_view()[1] == (1, 0, 0)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_guard__module_api_first_use__registers_the_breaker_and_keeps_the_name():
    @breakers.guard("tests-guard-api")
    def ping() -> str:
        """Ping."""
        return "pong"

    assert ping() == "pong"
    assert ping.__name__ == "ping"
    with breakers.guard("tests-guard-api"):
        pass
    wait_until(
        lambda: Breaker.objects.filter(name="tests-guard-api").exists(),
        timeout=5,
        what="the agent to register the breaker",
    )


async def test_guard__first_use_in_an_event_loop__starts_on_defaults_without_waiting(
    agent,
):
    stored = BreakerConfig(minimum_calls=1, window_size=1)
    agent.fleet.store_config("dep", stored)
    with GatedRedis(agent.fleet.url) as gated:
        slow = Agent(Fleet(gated.url, agent.fleet.prefix), interval=0.02, persist=False)
        try:
            async with Guard(slow.breaker("dep"), None):
                pass
            # A blocking first read would have timed out on the held request.
            assert not slow.health().degraded
            dep = slow.breakers["dep"]
            assert dep.config == BreakerConfig()

            gated.open()

            wait_until(lambda: dep.config == stored, timeout=5, what="stored config")
        finally:
            slow.stop()
    assert dep.local_view()[1] == (0, 0, 0)  # the window restarts on the new config


def test_guard__first_use_outside_an_event_loop__reads_the_stored_config(agent):
    stored = BreakerConfig(minimum_calls=1, window_size=1)
    agent.fleet.store_config("dep", stored)

    with Guard(agent.breaker("dep"), None):
        pass

    assert agent.breakers["dep"].config == stored
