"""Celery queues and workers as the broker and the workers themselves report them.

What operators open Flower for: each queue's depth and the age of its oldest message,
read straight from the Redis broker (kombu keeps a queue as a list per priority step,
``<queue>`` and ``<queue>\\x06\\x16<step>``, oldest message at the tail), and which
workers answer, how busy they are, read with Celery's control ``stats``/``active``.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

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


def workers_sample(app: Celery, *, timeout: float) -> list[WorkerSample]:
    """The workers that answer within ``timeout`` seconds, with their load."""
    inspect = app.control.inspect(timeout=timeout)
    # Each broadcast waits out its whole reply window: ask all three at once.
    with ThreadPoolExecutor(max_workers=3) as pool:
        calls = [
            pool.submit(ask)
            for ask in (inspect.stats, inspect.active, inspect.active_queues)
        ]
        replies: list[dict[str, Any]] = [call.result() or {} for call in calls]
    stats, active, queues = replies
    return [
        WorkerSample(
            name=name,
            active=len(active.get(name) or []),
            concurrency=int(info.get("pool", {}).get("max-concurrency") or 0),
            processed=sum((info.get("total") or {}).values()),
            queues=tuple(sorted(q["name"] for q in queues.get(name) or [])),
        )
        for name, info in sorted(stats.items())
    ]
