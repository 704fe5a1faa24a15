"""Celery tasks of the healing app: thin wrappers around services."""

from celery import shared_task
from django.utils import timezone

from apps.healing.services import (
    ATTEMPT_TASK,
    healing_attempt_run,
    healing_dispatch_due,
)


# Safe twice at once: the component's Redis lock and the due check let one run.
@shared_task(name=ATTEMPT_TASK, ignore_result=True)
def attempt(policy_id: int, forced: bool = False) -> int | None:
    done = healing_attempt_run(policy_id=policy_id, forced=forced)
    return done.pk if done is not None else None


@shared_task(name="healing.dispatch_due", ignore_result=True)
def dispatch_due() -> int:
    return healing_dispatch_due(now=timezone.now())
