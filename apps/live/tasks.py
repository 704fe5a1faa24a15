"""Celery tasks of the live app (thin wrappers around services)."""

from celery import shared_task

from apps.live.services import live_sample


@shared_task(name="live.sample", ignore_result=True)
def sample() -> int:
    """Sample queues and workers and publish them; returns the workers that answered."""
    return len(live_sample().workers)
