"""Queue depths and worker presence from the real broker and real workers (#8)."""

import json
import os
import secrets
import time

import pytest
import redis
from django.conf import settings

from apps.live.publisher import channel
from apps.live.selectors import queues_latest, workers_latest
from apps.live.services import live_sample
from opsconsole.celery import app
from tests.procs import celery_worker


def _published(pubsub, topic: str, key: str, deadline: float = 5.0) -> dict:
    """The next ``topic`` message for ``key`` on the live channel."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is None:
            continue
        data = json.loads(message["data"])
        if data["topic"] == topic and data["key"] == key:
            return data["payload"]
    raise AssertionError(f"no {topic} message for {key} within {deadline} s")


@pytest.fixture
def live_channel():
    pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    pubsub.subscribe(channel())
    yield pubsub
    pubsub.close()


def test_live_sample__tasks_pile_up_on_unconsumed_queue__depth_and_age(live_channel):
    queue = f"piled-{secrets.token_hex(3)}"
    for _ in range(3):
        app.send_task("nobody.runs.this", queue=queue)
    app.send_task("nobody.runs.this", queue=queue, priority=5)

    sample = live_sample(timeout=0.3)

    piled = next(q for q in sample.queues if q.name == queue)
    assert piled.depth == 4
    assert piled.oldest_age_s is not None
    assert 0 <= piled.oldest_age_s < 60
    payload = _published(live_channel, "queues", queue)
    assert payload["depth"] == 4
    assert any(q["name"] == queue for q in queues_latest()["queues"])


@pytest.mark.slow
def test_live_sample__worker_stops__reported_gone(tmp_path, live_channel):
    hostname = f"leaving-{os.getpid()}@localhost"
    with celery_worker(tmp_path, name="leaving"):
        first = live_sample(timeout=1.0)
        assert hostname in [w.name for w in first.workers]
        assert hostname in [w["name"] for w in workers_latest()["workers"]]

    second = live_sample(timeout=1.0)

    assert hostname not in [w.name for w in second.workers]
    assert hostname in second.gone
    payload = _published(live_channel, "workers", hostname)
    while payload.get("gone") is not True:
        payload = _published(live_channel, "workers", hostname)
    assert payload["name"] == hostname
