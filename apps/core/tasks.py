"""Celery tasks of the core app: thin wrappers around services."""

from typing import Any

from celery import Task, shared_task

from apps.core.services import SELFTEST_TASK, selftest_complete


@shared_task(name=SELFTEST_TASK, bind=True)
def selftest_run(self: Task, requested_at: float) -> dict[str, Any]:
    return selftest_complete(
        task_id=str(self.request.id),
        requested_at=requested_at,
        worker=str(self.request.hostname),
    )
