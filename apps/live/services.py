"""Writes of the live app: the queue and worker sample (flow 6, issue #8)."""

import json
import time
from dataclasses import asdict, dataclass

import structlog
from django.conf import settings

from apps.core.redis import shared_redis
from apps.live.publisher import publish
from apps.live.queues import QueueSample, WorkerSample, queues_sample, workers_sample

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LiveSample:
    sampled_at: float
    queues: tuple[QueueSample, ...]
    workers: tuple[WorkerSample, ...]
    gone: tuple[str, ...]


def sample_key() -> str:
    return f"{settings.OPSCONSOLE_REDIS_PREFIX}live:sample"


def broker_prefix() -> str:
    return str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"])


def live_sample(*, timeout: float = 1.0) -> LiveSample:
    """Sample every queue and worker, keep the sample for snapshots and publish the
    changes: one ``queues`` delta per queue, one ``workers`` delta per worker, and a
    ``gone`` delta for each worker that answered last time but not now."""
    from opsconsole.celery import app

    client = shared_redis()
    now = time.time()
    queues = tuple(queues_sample(client, prefix=broker_prefix(), now=now))
    workers = tuple(workers_sample(app, timeout=timeout))
    previous = json.loads(
        client.getset(sample_key(), _encode(now, queues, workers)) or "{}"
    )
    answered = {worker.name for worker in workers}
    gone = tuple(sorted({w["name"] for w in previous.get("workers", [])} - answered))
    for queue in queues:
        publish("queues", {**asdict(queue), "sampled_at": now}, key=queue.name)
    for worker in workers:
        publish("workers", {**asdict(worker), "sampled_at": now}, key=worker.name)
    for name in gone:
        log.warning("worker.gone", worker=name)
        publish("workers", {"name": name, "gone": True, "sampled_at": now}, key=name)
    return LiveSample(now, queues, workers, gone)


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
