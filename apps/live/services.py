"""Writes of the live app: the queue and worker sample, task outcomes (flow 6, #8)."""

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError

from apps.core.redis import shared_redis
from apps.live.publisher import publish
from apps.live.queues import QueueSample, WorkerSample, queues_sample, workers_sample
from apps.live.selectors import (
    TaskOutcomesReport,
    sample_key,
    task_outcomes,
    tasks_key,
)

log = structlog.get_logger(__name__)

# Minute rollups land every 15 s (the metrics.rollups_run schedule): reading the
# outcomes more often would only read the same rows again.
TASKS_EVERY_S = 15
# The queues topic carries one delta per queue, keyed by its name, and one for the
# task outcomes with this key: kombu queue names are never empty (see queue_names).
TASKS_DELTA_KEY = ""


@dataclass(frozen=True, slots=True)
class LiveSample:
    sampled_at: float
    queues: tuple[QueueSample, ...]
    workers: tuple[WorkerSample, ...]
    gone: tuple[str, ...]
    tasks: TaskOutcomesReport | None  # None unless this sample refreshed them


def broker_prefix() -> str:
    return str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"])


def live_sample() -> LiveSample:
    """Sample every queue and worker, keep the sample for snapshots and publish the
    changes: one ``queues`` delta per queue, one ``workers`` delta per worker, and a
    ``gone`` delta for each worker that reported last time but not now. At most
    every 15 s, also the task outcomes (see ``task_outcomes_refresh``)."""
    client = shared_redis()
    now = time.time()
    queues = tuple(queues_sample(client, prefix=broker_prefix(), now=now))
    workers = tuple(workers_sample(client))
    previous = json.loads(
        client.getset(sample_key(), _encode(now, queues, workers)) or "{}"
    )
    reported = {worker.name for worker in workers}
    gone = tuple(sorted({w["name"] for w in previous.get("workers", [])} - reported))
    for queue in queues:
        publish("queues", {**asdict(queue), "sampled_at": now}, key=queue.name)
    for worker in workers:
        publish("workers", {**asdict(worker), "sampled_at": now}, key=worker.name)
    for name in gone:
        log.warning("worker.gone", worker=name)
        publish("workers", {"name": name, "gone": True, "sampled_at": now}, key=name)
    tasks = None
    if client.set(f"{tasks_key()}:due", 1, nx=True, ex=TASKS_EVERY_S):
        tasks = task_outcomes_refresh(names=task_names(), now=now)
    return LiveSample(now, queues, workers, gone, tasks)


def task_names() -> list[str]:
    """The console's own Celery tasks (Celery's built-in ``celery.*`` left out)."""
    from opsconsole.celery import app

    return sorted(name for name in app.tasks if not name.startswith("celery."))


def task_outcomes_refresh(*, names: list[str], now: float) -> TaskOutcomesReport | None:
    """Read the task outcomes of the last minutes, keep them for snapshots and
    publish them on ``queues``; None when the database cannot be read."""
    try:
        report = task_outcomes(names=names, now=datetime.fromtimestamp(now, UTC))
    except DatabaseError as exc:
        log.warning("live.task_outcomes_failed", error=str(exc))
        return None
    payload = task_outcomes_payload(report, computed_at=now)
    shared_redis().set(tasks_key(), json.dumps(payload, cls=DjangoJSONEncoder))
    publish("queues", payload, key=TASKS_DELTA_KEY)
    return report


def task_outcomes_payload(
    report: TaskOutcomesReport, *, computed_at: float
) -> dict[str, Any]:
    """The report as the dashboard reads it (snapshot and delta alike)."""
    return {"kind": "task_outcomes", "computed_at": computed_at, **asdict(report)}


def _encode(
    now: float, queues: tuple[QueueSample, ...], workers: tuple[WorkerSample, ...]
) -> str:
    return json.dumps(
        {
            "sampled_at": now,
            "queues": [asdict(queue) for queue in queues],
            "workers": [asdict(worker) for worker in workers],
        }
    )
