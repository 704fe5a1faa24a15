"""Celery tasks of the flags app: thin wrappers around services."""

from celery import shared_task
from django.utils import timezone

from apps.flags.services import scheduled_changes_apply_due


# Safe to run twice at once: each due change is claimed with SKIP LOCKED.
@shared_task(name="flags.apply_due_changes", ignore_result=True)
def apply_due_changes() -> int:
    return scheduled_changes_apply_due(now=timezone.now())
