"""Celery tasks of the components app: thin wrappers around services."""

from datetime import timedelta
from uuid import UUID

from celery import Task, shared_task
from celery.signals import worker_process_shutdown
from django.utils import timezone

from apps.components.checkers.runner import runner_close
from apps.components.heartbeats import PingAction, heartbeat_ping, heartbeats_evaluate
from apps.components.notifications.services import (
    DELIVER_TASK,
    MAX_ATTEMPTS,
    notification_deliver,
)
from apps.components.selectors import heartbeat_ping_uuid
from apps.components.services import (
    BEAT_HEARTBEAT_SLUG,
    RUN_BATCH_TASK,
    component_uptimes_refresh,
    components_dispatch_due,
    components_run_batch,
    results_prune,
)

# Raw results are kept this long; longer statistics come from rollups (Metrics).
RESULT_RETENTION = timedelta(days=35)


@shared_task(name="components.dispatch_due", ignore_result=True)
def dispatch_due() -> int:
    return components_dispatch_due(now=timezone.now())


# Safe to run twice at once: each late heartbeat is claimed with SKIP LOCKED.
@shared_task(name="components.heartbeats_evaluate", ignore_result=True)
def evaluate_heartbeats() -> int:
    return heartbeats_evaluate(now=timezone.now())


# Safe to run twice: a second ping in a period only moves the next one's due time.
@shared_task(name="components.beat_heartbeat", ignore_result=True)
def beat_heartbeat() -> bool:
    """Ping the console-beat heartbeat component; False if it isn't registered.

    Beat schedules this task and a worker runs it, so each ping proves that beat
    was ticking and a worker was taking tasks within the period. When either stops
    (or the queue backs up past the grace) the pings stop. Readers (/health, the
    dashboard, admin, API) show it late as soon as its grace runs out
    (``lateness``); the incident itself is recorded by the evaluator
    (components.heartbeats_evaluate), which is beat-scheduled too, so from its first
    run after beat returns.
    """
    ping_uuid = heartbeat_ping_uuid(slug=BEAT_HEARTBEAT_SLUG)
    if ping_uuid is None:
        return False
    heartbeat_ping(ping_uuid=ping_uuid, action=PingAction.SUCCESS, now=timezone.now())
    return True


# Not acks_late-sensitive: a redelivered batch finds its claim gone and does nothing.
@shared_task(name=RUN_BATCH_TASK, ignore_result=True)
def run_batch(component_ids: list[int], claim_token: str) -> int:
    return components_run_batch(
        component_ids=component_ids, claim_token=UUID(claim_token)
    )


@worker_process_shutdown.connect
def _close_runner(**kwargs: object) -> None:
    """A worker child going away closes its checks' event loop and HTTP session."""
    runner_close()


@shared_task(name="components.results_prune", ignore_result=True)
def prune_results() -> int:
    return results_prune(older_than=timezone.now() - RESULT_RETENTION)


# Safe to run twice at once: rows the other run holds are skipped, then redone.
@shared_task(name="components.uptimes_refresh", ignore_result=True)
def refresh_uptimes() -> int:
    return component_uptimes_refresh(now=timezone.now())


# Safe to run twice: the notification is claimed before sending, so a redelivered
# task finds it sent (or held) and returns. Retries only what the sender calls
# retryable (transport errors, 5xx), with the service's backoff.
@shared_task(name=DELIVER_TASK, bind=True, ignore_result=True, max_retries=MAX_ATTEMPTS)
def deliver_notification(self: Task, notification_id: int) -> str:
    attempt = notification_deliver(notification_id=notification_id)
    if attempt is not None and attempt.retry_in is not None:
        raise self.retry(countdown=attempt.retry_in)
    return attempt.status if attempt is not None else "skipped"
