"""Celery tasks of the metrics app: thin wrappers around services; each is safe
to run twice at once (claims with SKIP LOCKED, idempotent upserts, IF EXISTS DDL)."""

from celery import shared_task
from django.utils import timezone

from apps.metrics.services import partitions_prepare, retention_apply, rollups_run


@shared_task(name="metrics.rollups_run", ignore_result=True)
def run_rollups() -> dict[str, int]:
    return rollups_run(now=timezone.now())


@shared_task(name="metrics.partitions_prepare", ignore_result=True)
def prepare_partitions() -> None:
    partitions_prepare(today=timezone.now().date())


@shared_task(name="metrics.retention_apply", ignore_result=True)
def apply_retention() -> list[str]:
    return list(retention_apply(now=timezone.now()).partitions_dropped)
