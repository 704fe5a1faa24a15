"""The Celery app: configured from Django settings (CELERY_*), tasks found in each app.

The beat schedule is declared here and only here, one commented entry per job.
"""

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")

app = Celery("opsconsole")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(task: Task | None = None, **kwargs: object) -> None:
    """Around each task, what Django does around each request: close the database
    connections that errored or outlived CONN_MAX_AGE, keep the others (see
    CELERY_DB_REUSE_MAX). Not for a task run eagerly inside a caller's transaction."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Flow 1: claim due components and enqueue their check batches. A tick nobody
    # picked up within 5 s is dropped; the next one claims the same work.
    "components.dispatch_due": {
        "task": "components.dispatch_due",
        "schedule": 1.0,
        "options": {"expires": 5},
    },
    # Heartbeats: record a failure for each ping missing past its grace and each
    # run going on past it. Every 5 s: grace times are minutes or more.
    "components.heartbeats_evaluate": {
        "task": "components.heartbeats_evaluate",
        "schedule": 5.0,
        "options": {"expires": 10},
    },
    # Self-monitoring: ping the console-beat heartbeat; the ping travels beat →
    # worker, so its absence means one of them stopped. Stale after a period.
    "components.beat_heartbeat": {
        "task": "components.beat_heartbeat",
        "schedule": 10.0,
        "options": {"expires": 10},
    },
    # Flow 6: queue depths and worker presence for the dashboard. Every 2 s, so a
    # worker that stops answering is shown gone well within 10 s.
    "live.sample": {
        "task": "live.sample",
        "schedule": 2.0,
        "options": {"expires": 4},
    },
    # Flags: make scheduled changes that are due ("switch on at 02:00"). Every 10 s
    # is precise enough for a wall-clock schedule; rows are claimed SKIP LOCKED.
    "flags.apply_due_changes": {
        "task": "flags.apply_due_changes",
        "schedule": 10.0,
        "options": {"expires": 10},
    },
    # Flow 3: enqueue healing attempts that are due but whose task was lost (a
    # worker died); attempts are locked per component, so a duplicate is harmless.
    "healing.dispatch_due": {
        "task": "healing.dispatch_due",
        "schedule": 15.0,
        "options": {"expires": 15},
    },
    # Delete raw health results past their retention, in bounded batches.
    "components.results_prune": {
        "task": "components.results_prune",
        "schedule": 3600.0,
    },
    # Flow 5 (metrics): roll closed minutes (and re-roll those late samples
    # marked), then the hours and days they belong to. Overlapping runs are safe.
    "metrics.rollups_run": {
        "task": "metrics.rollups_run",
        "schedule": 15.0,
        "options": {"expires": 30},
    },
    # The admin and API lists' "uptime 24 h", kept on each state row from the hour
    # rollups: a rolled hour (or a late sample's re-roll) shows within a minute.
    "components.uptimes_refresh": {
        "task": "components.uptimes_refresh",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Create raw day partitions a few days ahead (writers also create on demand).
    "metrics.partitions_prepare": {
        "task": "metrics.partitions_prepare",
        "schedule": 3600.0,
    },
    # Drop raw day partitions and delete rollups past their retention.
    "metrics.retention_apply": {
        "task": "metrics.retention_apply",
        "schedule": 3600.0,
    },
}
app.conf.beat_schedule = BEAT_SCHEDULE
