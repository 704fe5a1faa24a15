"""Task outcomes per minute: Celery signals in a real worker → metrics → live (#8)."""

import json
import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.conf import settings

from apps.live.publisher import channel
from apps.live.selectors import TaskOutcomesReport, queues_latest, task_outcomes
from apps.live.services import TASKS_DELTA_KEY, task_outcomes_refresh
from apps.metrics.services import rollups_run
from opsconsole.celery import app
from tests.live.worker_tasks import FAILS, RETRIES_ONCE, RUNTIME_S, SUCCEEDS
from tests.procs import celery_worker, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
NAMES = [SUCCEEDS, FAILS, RETRIES_ONCE]


def _totals(report: TaskOutcomesReport) -> dict[str, tuple[int, int, int]]:
    return {
        outcomes.task: (
            sum(m.succeeded for m in outcomes.minutes),
            sum(m.failed for m in outcomes.minutes),
            sum(m.retried for m in outcomes.minutes),
        )
        for outcomes in report.tasks
    }


def _rolled_as(
    want: dict[str, tuple[int, int, int]], later: datetime
) -> TaskOutcomesReport | None:
    # "later": the minutes the tasks ran in count as closed, so they roll now
    # rather than a minute from now (samples that land after are rolled again).
    rollups_run(now=later)
    report = task_outcomes(names=NAMES, now=later)
    return report if _totals(report) == want else None


def test_task_outcomes__worker_runs_tasks__counts_per_outcome_and_p95_published(
    tmp_path,
):
    # Given a worker with tasks that succeed, fail, and retry once then succeed
    queue = f"outcomes-{secrets.token_hex(3)}"
    pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    pubsub.subscribe(channel())
    env = {"CELERY_WORKER_INCLUDE": "tests.live.worker_tasks"}
    with celery_worker(tmp_path, name="outcomes", CELERY_WORKER_QUEUES=queue, **env):
        # When they run
        for name in (SUCCEEDS, SUCCEEDS, SUCCEEDS, FAILS, FAILS, RETRIES_ONCE):
            app.send_task(name, queue=queue)
        later = datetime.now(UTC) + timedelta(minutes=2)
        want = {SUCCEEDS: (3, 0, 0), FAILS: (0, 2, 0), RETRIES_ONCE: (1, 0, 1)}
        report = wait_until(
            lambda: _rolled_as(want, later),
            timeout=60,
            interval=0.5,
            what=f"outcomes {want} rolled up",
        )

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
    assert _totals(published) == want
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
