"""Run tasks with known outcomes in a real worker and wait for their rollups."""

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import connection

from apps.live.outcomes import RUNTIME_METRIC
from apps.live.selectors import TaskOutcomesReport, task_outcomes
from apps.metrics.services import rollups_run
from opsconsole.celery import app
from tests.live.worker_tasks import FAILS, RETRIES_ONCE, SUCCEEDS
from tests.procs import celery_worker, wait_until

NAMES = [SUCCEEDS, FAILS, RETRIES_ONCE]
# Per task: (succeeded, failed, retried) once every run below is recorded.
WANT = {SUCCEEDS: (3, 0, 0), FAILS: (0, 2, 0), RETRIES_ONCE: (1, 0, 1)}
RUNS = (SUCCEEDS, SUCCEEDS, SUCCEEDS, FAILS, FAILS, RETRIES_ONCE)


def totals(report: TaskOutcomesReport) -> dict[str, tuple[int, int, int]]:
    """Per task: its runs per outcome summed over the report's minutes."""
    return {
        outcomes.task: (
            sum(m.succeeded for m in outcomes.minutes),
            sum(m.failed for m in outcomes.minutes),
            sum(m.retried for m in outcomes.minutes),
        )
        for outcomes in report.tasks
    }


def run_known_tasks(tmp: Path) -> tuple[TaskOutcomesReport, datetime]:
    """Run ``RUNS`` in a worker of their own (on a queue of its own, recording
    outcomes); return the report once it counts every run, and the "now" it was
    read at: two minutes ahead, so the minutes they ran in count as closed and roll
    at once (samples that land later are rolled again)."""
    queue = f"outcomes-{secrets.token_hex(3)}"
    env = {
        "CELERY_WORKER_INCLUDE": "tests.live.worker_tasks",
        "CELERY_WORKER_QUEUES": queue,
        "OPSCONSOLE_LIVE_TASK_OUTCOMES": "true",
    }
    with celery_worker(tmp, name="outcomes", **env):
        for name in RUNS:
            app.send_task(name, queue=queue)
        later = datetime.now(UTC) + timedelta(minutes=2)
        report = wait_until(
            lambda: _rolled_as_wanted(later),
            timeout=60,
            interval=0.5,
            what=f"outcomes {WANT} rolled up",
        )
    _forget_raw_samples()
    return report, later


def _forget_raw_samples() -> None:
    # Rolled up, the raw samples are not needed; left behind they would outlive the
    # flush of their series (see tests/conftest.py) and break a later rollup.
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM metrics_sample WHERE series_id IN "
            "(SELECT id FROM metrics_series WHERE name = %s)",
            [RUNTIME_METRIC],
        )


def _rolled_as_wanted(later: datetime) -> TaskOutcomesReport | None:
    rollups_run(now=later)
    report = task_outcomes(names=NAMES, now=later)
    return report if totals(report) == WANT else None
