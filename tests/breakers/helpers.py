import pytest

from apps.breakers.agent import Agent
from apps.breakers.engine import LocalBreaker
from apps.breakers.guard import Guard


class Down(Exception):
    """What a failing dependency raises in these tests."""


def fail(breaker: LocalBreaker, exc: Exception | None = None) -> None:
    exc = exc or Down("down")
    with pytest.raises(type(exc)), Guard(breaker, None):
        raise exc


def succeed(breaker: LocalBreaker) -> None:
    with Guard(breaker, None):
        pass


def fleet_state(agent: Agent, name: str = "dep") -> str:
    return agent.fleet.read_states([name])[name].get("state", "")
