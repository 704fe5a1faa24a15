"""Task outcomes per minute: Celery signals in a real worker → metrics → live (#8)."""

import json
import time

import pytest
import redis
from django.conf import settings

from apps.live.publisher import channel
from apps.live.selectors import queues_latest
from apps.live.services import TASKS_DELTA_KEY, task_outcomes_refresh
from tests.live.task_runs import NAMES, WANT, run_known_tasks, totals
from tests.live.worker_tasks import FAILS, RUNTIME_S, SUCCEEDS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_task_outcomes__worker_runs_tasks__counts_per_outcome_and_p95_published(
    tmp_path,
):
    pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    pubsub.subscribe(channel())

    # Given a worker that ran tasks which succeed, fail, and retry once then succeed
    report, later = run_known_tasks(tmp_path)

    # Then each task's minutes count its runs per outcome, with the runtime p95
    minutes = {o.task: o.minutes for o in report.tasks}
    assert report.through is not None
    assert all(m[-1].start == report.through for m in minutes.values())
    p95s = [m.p95_s for m in minutes[SUCCEEDS] if m.p95_s is not None]
    assert p95s
    assert min(p95s) >= RUNTIME_S * 0.95  # the sketch's relative error is ~1%
    assert all(m.p95_s is None for m in minutes[FAILS])

    # And a refresh keeps them for snapshots and publishes them on "queues"
    published = task_outcomes_refresh(names=NAMES, now=later.timestamp())
    assert published is not None
    assert totals(published) == WANT
    kept = queues_latest()["tasks"]
    assert kept["kind"] == "task_outcomes"
    assert {t["task"] for t in kept["tasks"]} == set(NAMES)
    message = _next_tasks_message(pubsub)
    pubsub.close()
    assert message["topic"] == "queues"
    assert message["payload"] == kept


def _next_tasks_message(pubsub: redis.client.PubSub) -> dict:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        raw = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if raw is not None:
            data = json.loads(raw["data"])
            if data["topic"] == "queues" and data["key"] == TASKS_DELTA_KEY:
                return data
    raise AssertionError("no task outcomes message on the live channel within 5 s")
