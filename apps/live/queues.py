"""Celery queues and workers as the broker and the workers themselves report them.

What operators open Flower for: each queue's depth and the age of its oldest message,
read straight from the Redis broker (kombu keeps a queue as a list per priority step,
``<queue>`` and ``<queue>\\x06\\x16<step>``, oldest message at the tail), and which
workers are there and how busy they are, from a report each worker's main process
writes to Redis every ``WORKER_REPORT_EVERY_S`` (the numbers Celery's control
``stats``/``active`` would answer, read from the same worker state). A control
broadcast waits out its whole reply window, so sampling by asking held a worker
process for a second every two seconds; reading the reports waits for nothing.
A worker that stops reporting is gone once its report expires.
"""

import json
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis
import structlog
from django.conf import settings

from apps.core.redis import shared_redis

log = structlog.get_logger(__name__)

SENT_AT_HEADER = "opsconsole_sent_at"
_SEP = "\x06\x16"
_PRIORITY_STEPS = ("", f"{_SEP}3", f"{_SEP}6", f"{_SEP}9")
# Celery's own plumbing: control replies and event queues, not work.
_INTERNAL = ("pidbox", "celeryev")


@dataclass(frozen=True, slots=True)
class QueueSample:
    name: str
    depth: int
    oldest_age_s: float | None


@dataclass(frozen=True, slots=True)
class WorkerSample:
    name: str
    active: int
    concurrency: int
    processed: int
    queues: tuple[str, ...]


def stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """``before_task_publish`` receiver: when the message was sent, for queue age."""
    if headers is not None:
        headers.setdefault(SENT_AT_HEADER, time.time())


def queue_names(client: redis.Redis, *, prefix: str) -> list[str]:
    """Every queue declared on the broker (kombu's exchange bindings), sorted."""
    names: set[str] = set()
    for key in client.scan_iter(match=f"{prefix}_kombu.binding.*", count=500):
        for member in client.smembers(key):
            text = member.decode() if isinstance(member, bytes) else str(member)
            queue = text.rsplit(_SEP, 1)[-1]
            if queue and not any(word in queue for word in _INTERNAL):
                names.add(queue)
    return sorted(names)


def queues_sample(
    client: redis.Redis, *, prefix: str, now: float | None = None
) -> list[QueueSample]:
    """Depth and oldest-message age of every declared queue."""
    now = time.time() if now is None else now
    names = queue_names(client, prefix=prefix)
    pipe = client.pipeline(transaction=False)
    for name in names:
        for step in _PRIORITY_STEPS:
            pipe.llen(f"{prefix}{name}{step}")
            pipe.lindex(f"{prefix}{name}{step}", -1)
    replies = pipe.execute()
    samples = []
    for index, name in enumerate(names):
        chunk = replies[index * 8 : index * 8 + 8]
        depth = sum(int(length) for length in chunk[0::2])
        sent = [t for t in (_sent_at(raw) for raw in chunk[1::2]) if t is not None]
        age = round(max(0.0, now - min(sent)), 3) if sent else None
        samples.append(QueueSample(name, depth, age))
    return samples


def _sent_at(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)["headers"][SENT_AT_HEADER]
        return float(value)
    except (ValueError, KeyError, TypeError):
        return None


# A report lives this long: a worker killed without a word is gone from the
# sample within TTL + the sampling period (2 s), inside the dashboard's 10 s.
WORKER_REPORT_EVERY_S = 2.0
WORKER_REPORT_TTL_S = 5


def workers_key() -> str:
    """The set of worker names that have reported (each report is its own key)."""
    return f"{settings.OPSCONSOLE_REDIS_PREFIX}live:workers"


def worker_report_key(name: str) -> str:
    return f"{settings.OPSCONSOLE_REDIS_PREFIX}live:worker:{name}"


def workers_sample(client: redis.Redis) -> list[WorkerSample]:
    """The workers whose report has not expired, by name (two round trips)."""
    names = sorted(
        member.decode() if isinstance(member, bytes) else str(member)
        for member in client.smembers(workers_key())
    )
    if not names:
        return []
    reports = client.mget([worker_report_key(name) for name in names])
    expired = [name for name, raw in zip(names, reports, strict=True) if raw is None]
    if expired:
        client.srem(workers_key(), *expired)
    return [_from_report(json.loads(raw)) for raw in reports if raw is not None]


def _from_report(data: dict[str, Any]) -> WorkerSample:
    return WorkerSample(
        name=str(data["name"]),
        active=int(data["active"]),
        concurrency=int(data["concurrency"]),
        processed=int(data["processed"]),
        queues=tuple(data["queues"]),
    )


def own_sample(consumer: Any) -> WorkerSample:
    """This worker's figures, from the state its control replies read (call in the
    worker's main process)."""
    from celery.worker import state

    task_consumer = getattr(consumer, "task_consumer", None)
    queues = task_consumer.queues if task_consumer is not None else []
    return WorkerSample(
        name=consumer.hostname,
        active=len(state.active_requests),
        # What control ``stats`` calls the pool's max-concurrency.
        concurrency=int(getattr(consumer.pool, "limit", 0) or 0),
        # Summed in C, so the main thread's updates cannot interleave.
        processed=sum(state.total_count.values()),
        queues=tuple(sorted(queue.name for queue in list(queues))),
    )


class WorkerReporter:
    """A thread in a worker's main process writing its report every few seconds;
    on a graceful stop the report is removed, so the worker is gone at once."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.name = str(consumer.hostname)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="live-worker-report", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WORKER_REPORT_EVERY_S + 1)
        try:
            client = shared_redis()
            client.delete(worker_report_key(self.name))
            client.srem(workers_key(), self.name)
        except redis.RedisError as exc:
            log.warning("worker.report_failed", worker=self.name, error=str(exc))

    def report(self) -> None:
        sample = own_sample(self.consumer)
        pipe = shared_redis().pipeline(transaction=False)
        pipe.set(
            worker_report_key(sample.name),
            json.dumps(asdict(sample)),
            ex=WORKER_REPORT_TTL_S,
        )
        pipe.sadd(workers_key(), sample.name)
        pipe.execute()

    def _run(self) -> None:
        while True:
            try:
                self.report()
            except Exception as exc:  # noqa: BLE001 - the next report may succeed
                log.warning("worker.report_failed", worker=self.name, error=str(exc))
            if self._stop.wait(WORKER_REPORT_EVERY_S):
                return
