"""Celery workers: at least N workers answer a ping (or consume a given queue)."""

import asyncio

from pydantic import Field

from apps.components.checkers.base import (
    HEALTHY,
    UNHEALTHY,
    CheckConfig,
    CheckerKind,
    CheckOutcome,
    Stopwatch,
)


class Config(CheckConfig):
    min_workers: int = Field(default=1, ge=1)
    queue: str | None = None


def _answering(queue: str | None, wait: float, enough: int) -> list[str]:
    """Names of the workers that answered within ``wait`` seconds (blocking); a
    plain ping stops waiting once ``enough`` have answered."""
    from opsconsole.celery import app

    if queue is None:
        # Without a limit a broadcast always waits out its whole window, so a
        # healthy check would report the window as its latency.
        replies = app.control.ping(timeout=wait, limit=enough) or []
        return sorted(name for reply in replies for name in reply)
    queues = app.control.inspect(timeout=wait).active_queues() or {}
    return sorted(
        name
        for name, active in queues.items()
        if any(q["name"] == queue for q in active)
    )


async def check(config: Config, timeout: float) -> CheckOutcome:
    watch = Stopwatch()
    # A broadcast waits for its whole reply window; keep it inside the timeout.
    wait = min(timeout / 2, 2.0)
    workers = await asyncio.to_thread(
        _answering, config.queue, wait, config.min_workers
    )
    latency = watch.ms()
    details = {"workers": workers}
    message = f"{len(workers)} worker(s) answered, need {config.min_workers}"
    status = HEALTHY if len(workers) >= config.min_workers else UNHEALTHY
    return CheckOutcome(status, latency, message, details)


KIND = CheckerKind("celery_workers", Config, check)
