import json

import pytest
import redis
from django.conf import settings

from apps.core import trace
from apps.live import publish
from apps.live.publisher import channel
from opsconsole.embedded import free_port
from tests.procs import wait_until


def test_publish__subscriber__gets_message_with_increasing_seq_and_trace():
    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    pubsub.subscribe(channel())
    wait_until(lambda: pubsub.get_message(timeout=0.1), timeout=5, what="subscribed")
    token = trace.bind(trace.new_trace())
    try:
        first = publish("flags", {"key": "a", "enabled": True}, key="a")
        second = publish("flags", {"key": "a", "enabled": False}, key="a")
        bound = trace.current_trace_id()
    finally:
        trace.unbind(token)
    assert first is not None
    assert second is not None
    assert second.seq == first.seq + 1

    def received():
        message = pubsub.get_message(timeout=0.1)
        return json.loads(message["data"]) if message else None

    got = wait_until(received, timeout=5, what="first message")
    assert got["topic"] == "flags"
    assert got["seq"] == first.seq
    assert got["payload"] == {"key": "a", "enabled": True}
    assert got["trace_id"] == bound
    pubsub.close()


def test_publish__unknown_topic__value_error():
    with pytest.raises(ValueError, match="unknown live topic"):
        publish("nope", {})


def test_publish__redis_unreachable__returns_none_without_raising(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    assert publish("components", {"slug": "db"}) is None
