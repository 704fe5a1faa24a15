"""Celery tasks of the live app (thin wrappers around services), and the worker
report each worker's main process writes for the dashboard."""

from typing import Any

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown

from apps.live.queues import WorkerReporter
from apps.live.services import live_sample

# The reporter of this worker's main process (at most one).
_reporters: list[WorkerReporter] = []


@shared_task(name="live.sample", ignore_result=True)
def sample() -> int:
    """Sample queues and workers and publish them; returns the workers reporting."""
    return len(live_sample().workers)


@worker_ready.connect
def _worker_report_start(sender: Any, **kwargs: object) -> None:
    """A worker, once ready, reports itself every few seconds (apps.live.queues)."""
    reporter = WorkerReporter(sender)
    reporter.start()
    _reporters.append(reporter)


@worker_shutdown.connect
def _worker_report_stop(**kwargs: object) -> None:
    """A worker stopping on purpose removes its report: gone at once."""
    while _reporters:
        _reporters.pop().stop()
