"""Transitions reach PostgreSQL and the live dashboard off the hot path."""

import json
import uuid

import pytest
import redis
from django.conf import settings

from apps.breakers.agent import Agent
from apps.breakers.fleet import Fleet
from apps.breakers.models import BreakerEvent
from apps.live.publisher import channel as live_channel
from tests.breakers.conftest import breaker
from tests.breakers.helpers import fail
from tests.procs import wait_until


def _breakers_message(pubsub: redis.client.PubSub) -> dict | None:
    message = pubsub.get_message(timeout=0.1)
    if message is None:
        return None
    data = json.loads(message["data"])
    return data if data["topic"] == "breakers" else None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_agent__breaker_trips__event_row_written_and_published_live():
    prefix = f"{settings.OPSCONSOLE_REDIS_PREFIX}t{uuid.uuid4().hex[:8]}:"
    agent = Agent(Fleet(settings.REDIS_URL, prefix), interval=0.02)
    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(live_channel())
    try:
        dep = breaker(agent, minimum_calls=2, window_size=2)
        fail(dep)
        fail(dep)

        event = wait_until(
            lambda: BreakerEvent.objects.filter(breaker__name="dep").first(),
            timeout=10,
            what="the agent to persist the transition",
        )
        message = wait_until(
            lambda: _breakers_message(pubsub), timeout=10, what="live message"
        )
    finally:
        agent.stop()
        pubsub.close()
        client.close()
    assert (event.from_state, event.to_state, event.origin) == (
        "CLOSED",
        "OPEN",
        "fleet",
    )
    assert message["key"] == "dep"
    assert message["payload"]["state"] == "OPEN"
