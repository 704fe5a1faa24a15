"""Task outcomes from Celery's own signals, recorded through the metrics path.

Each task run in a worker becomes one ``celery.task.runtime`` sample (seconds)
tagged with the task name and its outcome (succeeded, failed, retried, or the
lower-cased state for the rare others): a minute rollup of one tag set holds the
runs with that outcome (its count) and their runtimes (its sketch), read back by
``apps.live.selectors.task_outcomes``.

``task_prerun``/``task_postrun`` run in the process that runs the task. A run that
never reaches postrun (killed at the hard time limit, or its pool process died)
is reported by ``task_failure`` in the worker's main process instead; it counts as
failed, with the time limit as its runtime when that is what ended it, else 0.
"""

import time
from typing import Any

from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import Task, signals
from django.conf import settings

from apps import metrics

RUNTIME_METRIC = "celery.task.runtime"
OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}
# metrics.record refuses longer tag values; task names are this short in practice.
MAX_TASK_NAME = 200

# task id -> perf_counter at prerun. Celery runs prerun and postrun of one task in
# the same process and thread; postrun always fires (in a ``finally``) and pops it.
_started: dict[str, float] = {}


def task_prerun(task_id: str | None = None, **_: Any) -> None:
    """``task_prerun`` receiver: note when the task started."""
    if task_id is not None:
        _started[task_id] = time.perf_counter()


def task_postrun(
    task_id: str | None = None,
    task: Task | None = None,
    state: str | None = None,
    **_: Any,
) -> None:
    """``task_postrun`` receiver: record the run's outcome and runtime."""
    began = _started.pop(task_id, None) if task_id is not None else None
    if began is None or task is None or not task.name:
        return
    outcome = OUTCOMES.get(state or "", (state or "unknown").lower())
    _record(task.name, outcome, time.perf_counter() - began)


def task_failure(
    task_id: str | None = None,
    sender: Task | None = None,
    exception: BaseException | None = None,
    **_: Any,
) -> None:
    """``task_failure`` receiver: record failures that ended the run elsewhere."""
    if task_id in _started or sender is None or not sender.name:
        return  # it ran here: postrun records it
    if isinstance(exception, TimeLimitExceeded):
        runtime = float(exception.args[0]) if exception.args else 0.0
    elif isinstance(exception, WorkerLostError):
        runtime = 0.0
    else:
        return  # e.g. a rejected message: its run was recorded where it ran
    _record(sender.name, "failed", runtime)


def _record(task: str, outcome: str, runtime: float) -> None:
    tags = {"task": task[:MAX_TASK_NAME], "outcome": outcome}
    metrics.record(RUNTIME_METRIC, runtime, tags=tags)


def connect(**_: Any) -> None:
    """Start recording outcomes in this worker (a ``worker_init`` receiver, so that
    only worker processes record, and prefork children inherit the receivers),
    unless OPSCONSOLE_LIVE_TASK_OUTCOMES is off."""
    if not settings.OPSCONSOLE_LIVE_TASK_OUTCOMES:
        return
    signals.task_prerun.connect(task_prerun, weak=False)
    signals.task_postrun.connect(task_postrun, weak=False)
    signals.task_failure.connect(task_failure, weak=False)
