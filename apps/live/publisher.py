"""Publish a domain change to every web process (ARCHITECTURE flow 6).

Each message carries a per-topic sequence number from Redis (so a client can see a
gap and ask for a snapshot) and the trace id of its cause. It goes out on one Redis
pub/sub channel that each web process subscribes to once. Live state is best effort:
when Redis is unreachable the message is dropped and counted in the log; clients
resync from a snapshot, which is built from the database.
"""

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis
import structlog
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from apps.core.redis import shared_redis
from apps.core.trace import current_trace_id

log = structlog.get_logger(__name__)

TOPICS = frozenset(
    {
        "components",
        "breakers",
        "flags",
        "healing",
        "queues",
        "workers",
        "events",
        "metrics",
    }
)


@dataclass(frozen=True, slots=True)
class LiveMessage:
    topic: str
    seq: int
    key: str
    payload: dict[str, Any]
    trace_id: str
    at: float


def channel() -> str:
    return f"{settings.OPSCONSOLE_REDIS_PREFIX}live"


def seq_key(topic: str) -> str:
    return f"{settings.OPSCONSOLE_REDIS_PREFIX}live:seq:{topic}"


# Deltas go out in frames of at most 512 KiB (apps.live.connection); one item must fit.
MAX_PAYLOAD_BYTES = 256 * 1024


def publish(
    topic: str, payload: dict[str, Any], *, key: str = ""
) -> LiveMessage | None:
    """Send ``payload`` on ``topic``; call after the transaction commits."""
    sent = publish_many(topic, [(key, payload)])
    return sent[0] if sent else None


def publish_many(
    topic: str, items: list[tuple[str, dict[str, Any]]]
) -> list[LiveMessage]:
    """Send each (key, payload) of ``items`` on ``topic``, in order, with
    consecutive sequence numbers: two Redis round trips whatever their number (a
    batch of checks may change a hundred components). Empty if Redis failed."""
    if topic not in TOPICS:
        raise ValueError(f"unknown live topic {topic!r}")
    for _, payload in items:
        size = len(json.dumps(payload, cls=DjangoJSONEncoder))
        if size > MAX_PAYLOAD_BYTES:
            # A socket frame cannot carry it; publish an id and let clients fetch.
            raise ValueError(
                f"live payload of {size} bytes exceeds {MAX_PAYLOAD_BYTES}"
            )
    if not items:
        return []
    client = shared_redis()
    try:
        last = int(client.incrby(seq_key(topic), len(items)))
        trace_id, at = current_trace_id(), time.time()
        messages = [
            LiveMessage(topic, seq, key, payload, trace_id, at)
            for seq, (key, payload) in enumerate(items, start=last - len(items) + 1)
        ]
        pipe = client.pipeline(transaction=False)
        for message in messages:
            pipe.publish(channel(), json.dumps(asdict(message), cls=DjangoJSONEncoder))
        pipe.execute()
    except redis.RedisError as exc:
        keys = [key for key, _ in items]
        log.warning("live.publish_failed", topic=topic, keys=keys, error=str(exc))
        return []
    return messages
