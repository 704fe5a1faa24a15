import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings

from apps.breakers.agent import Agent
from apps.breakers.config import BreakerConfig
from apps.breakers.engine import LocalBreaker
from apps.breakers.fleet import Fleet
from tests.procs import wait_until


@pytest.fixture
def agent() -> Iterator[Agent]:
    """An agent on the session's Redis under a prefix of its own (no database)."""
    prefix = f"{settings.OPSCONSOLE_REDIS_PREFIX}t{uuid.uuid4().hex[:8]}:"
    made = Agent(Fleet(settings.REDIS_URL, prefix), interval=0.02, persist=False)
    yield made
    made.stop()


def breaker(agent: Agent, name: str = "dep", **config: object) -> LocalBreaker:
    """Breaker ``name`` of ``agent`` with ``config`` stored fleet-wide before first use
    (and applied: a first use in an event loop starts on the defaults)."""
    stored = BreakerConfig.from_mapping(config)
    agent.fleet.store_config(name, stored)
    made = agent.breaker(name)
    wait_until(lambda: made.config == stored, timeout=5, what=f"{name}'s config")
    return made
