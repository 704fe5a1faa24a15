"""Queue depths and worker presence from the real broker and real workers (#8)."""

import json
import os
import secrets
import signal
import time

import pytest
import redis
from django.conf import settings

from apps.live.publisher import channel
from apps.live.queues import WORKER_REPORT_EVERY_S, WORKER_REPORT_TTL_S
from apps.live.selectors import queues_latest, workers_latest
from apps.live.services import live_sample
from opsconsole.celery import app
from tests.live.worker_tasks import HOLDS
from tests.procs import celery_worker, wait_until


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


# A sample also refreshes the task outcomes (a database read) at most every 15 s.
@pytest.mark.django_db
def test_live_sample__tasks_pile_up_on_unconsumed_queue__depth_and_age(live_channel):
    queue = f"piled-{secrets.token_hex(3)}"
    for _ in range(3):
        app.send_task("nobody.runs.this", queue=queue)
    app.send_task("nobody.runs.this", queue=queue, priority=5)

    sample = live_sample()

    piled = next(q for q in sample.queues if q.name == queue)
    assert piled.depth == 4
    assert piled.oldest_age_s is not None
    assert 0 <= piled.oldest_age_s < 60
    payload = _published(live_channel, "queues", queue)
    assert payload["depth"] == 4
    assert any(q["name"] == queue for q in queues_latest()["queues"])


def _sampled_names() -> list[str]:
    return [w.name for w in live_sample().workers]


@pytest.mark.slow
def test_live_sample__worker_stops__reported_gone(tmp_path, live_channel):
    hostname = f"leaving-{os.getpid()}@localhost"
    with celery_worker(tmp_path, name="leaving"):
        wait_until(
            lambda: hostname in _sampled_names(), timeout=10, what="its first report"
        )
        first = next(w for w in live_sample().workers if w.name == hostname)
        assert first.concurrency == 2
        assert "default" in first.queues
        assert hostname in [w["name"] for w in workers_latest()["workers"]]

    second = live_sample()

    assert hostname not in [w.name for w in second.workers]
    assert hostname in second.gone
    payload = _published(live_channel, "workers", hostname)
    while payload.get("gone") is not True:
        payload = _published(live_channel, "workers", hostname)
    assert payload["name"] == hostname


@pytest.mark.slow
def test_live_sample__worker_killed__gone_once_its_report_expires(tmp_path):
    # Given a worker that has reported itself
    hostname = f"killed-{os.getpid()}@localhost"
    with celery_worker(tmp_path, name="killed") as worker:
        wait_until(
            lambda: hostname in _sampled_names(), timeout=10, what="its first report"
        )
        # When it dies without a word (no shutdown, no report removed)
        os.killpg(worker.popen.pid, signal.SIGKILL)
        killed_at = time.monotonic()

        # Then the samples stop listing it within the report's lifetime (+ a period)
        wait_until(
            lambda: hostname not in _sampled_names(),
            timeout=WORKER_REPORT_TTL_S + WORKER_REPORT_EVERY_S + 1,
            what="the killed worker to drop out",
        )
    assert (
        time.monotonic() - killed_at >= WORKER_REPORT_TTL_S - WORKER_REPORT_EVERY_S - 1
    )


@pytest.mark.slow
def test_live_sample__busy_worker__reports_its_active_tasks(tmp_path):
    # Given a worker running two tasks that take a while
    hostname = f"busy-{os.getpid()}@localhost"
    queue = f"busy-{secrets.token_hex(3)}"
    env = {
        "CELERY_WORKER_INCLUDE": "tests.live.worker_tasks",
        "CELERY_WORKER_QUEUES": queue,
    }
    with celery_worker(tmp_path, name="busy", **env):
        wait_until(
            lambda: hostname in _sampled_names(), timeout=10, what="its first report"
        )
        for _ in range(2):
            app.send_task(HOLDS, args=[4.0], queue=queue)

        # Then its report says both of its processes are busy
        wait_until(
            lambda: any(
                w.name == hostname and w.active == 2 for w in live_sample().workers
            ),
            timeout=10,
            what="two active tasks reported",
        )
