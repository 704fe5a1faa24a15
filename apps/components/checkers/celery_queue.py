"""Celery queue depth on the console's broker: degraded or unhealthy above thresholds.

Reads the broker as the live dashboard does (``apps.live.queues``).
"""

import asyncio

import redis
from pydantic import Field, model_validator

from apps.components.checkers.base import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    CheckConfig,
    CheckerKind,
    CheckOutcome,
    Stopwatch,
)


class Config(CheckConfig):
    queue: str = "default"
    degraded_above: int | None = Field(None, ge=0)
    unhealthy_above: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _thresholds(self) -> "Config":
        if self.degraded_above is None and self.unhealthy_above is None:
            raise ValueError("give degraded_above, unhealthy_above or both")
        if (
            self.degraded_above is not None
            and self.unhealthy_above is not None
            and self.degraded_above > self.unhealthy_above
        ):
            raise ValueError("degraded_above must not exceed unhealthy_above")
        return self


async def check(config: Config, timeout: float) -> CheckOutcome:
    watch = Stopwatch()
    depth = await asyncio.to_thread(_depth, config.queue, timeout)
    latency = watch.ms()
    details = {"queue": config.queue, "depth": depth}
    message = f"{depth} message(s) waiting on {config.queue!r}"
    if config.unhealthy_above is not None and depth > config.unhealthy_above:
        return CheckOutcome(UNHEALTHY, latency, message, details)
    if config.degraded_above is not None and depth > config.degraded_above:
        return CheckOutcome(DEGRADED, latency, message, details)
    return CheckOutcome(HEALTHY, latency, message, details)


def _depth(queue: str, timeout: float) -> int:
    from django.conf import settings

    from apps.live.queues import queues_sample
    from apps.live.services import broker_prefix

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout)
    with client:
        samples = queues_sample(client, prefix=broker_prefix())
    # A queue nobody declared yet holds nothing.
    return next((s.depth for s in samples if s.name == queue), 0)


KIND = CheckerKind("celery_queue", Config, check)
