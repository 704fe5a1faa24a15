"""Reads of the live app: the latest queue and worker sample, task outcomes."""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from apps.core.redis import shared_redis
from apps.live.outcomes import RUNTIME_METRIC
from apps.metrics.selectors import Bucket, metrics_query

MINUTE = timedelta(minutes=1)
OUTCOME_NAMES = ("succeeded", "failed", "retried")


@dataclass(frozen=True, slots=True)
class TaskMinute:
    start: datetime
    succeeded: int
    failed: int
    retried: int
    p95_s: float | None  # of the runs that succeeded


@dataclass(frozen=True, slots=True)
class TaskOutcomes:
    task: str
    minutes: tuple[TaskMinute, ...]  # oldest first, one per minute up to ``through``


@dataclass(frozen=True, slots=True)
class TaskOutcomesReport:
    through: datetime | None  # the newest minute rolled up: None when none is
    tasks: tuple[TaskOutcomes, ...]


def sample_key() -> str:
    """Where the latest queue and worker sample is kept (JSON)."""
    return f"{settings.OPSCONSOLE_REDIS_PREFIX}live:sample"


def tasks_key() -> str:
    """Where the latest task outcomes report is kept (JSON)."""
    return f"{settings.OPSCONSOLE_REDIS_PREFIX}live:tasks"


def _latest() -> dict[str, Any]:
    return json.loads(shared_redis().get(sample_key()) or '{"sampled_at": null}')


def queues_latest() -> dict[str, Any]:
    """``{"sampled_at", "queues": [...], "tasks": report | None}`` from the last
    sample and the last task outcomes report (None when never)."""
    latest = _latest()
    tasks = shared_redis().get(tasks_key())
    return {
        "sampled_at": latest["sampled_at"],
        "queues": latest.get("queues", []),
        "tasks": json.loads(tasks) if tasks else None,
    }


def workers_latest() -> dict[str, Any]:
    """``{"sampled_at", "workers": [...]}`` from the last sample (None when never)."""
    latest = _latest()
    return {"sampled_at": latest["sampled_at"], "workers": latest.get("workers", [])}


def task_outcomes(
    *, names: list[str], now: datetime, minutes: int = 10
) -> TaskOutcomesReport:
    """Runs per outcome and the runtime p95 per minute of each task in ``names``
    that ran in the ``minutes`` whole minutes before ``now``, from the minute
    rollups of ``celery.task.runtime``; minutes not rolled up yet are left out."""
    end = now.replace(second=0, microsecond=0)
    start = end - minutes * MINUTE
    found: dict[str, dict[str, dict[datetime, Bucket]]] = {}
    for name in names:
        by_outcome = {
            outcome: _buckets(name, outcome, start=start, end=end)
            for outcome in OUTCOME_NAMES
        }
        if any(by_outcome.values()):
            found[name] = by_outcome
    starts = [s for by in found.values() for b in by.values() for s in b]
    if not starts:
        return TaskOutcomesReport(through=None, tasks=())
    through = max(starts)
    # Every rolled minute, so a quiet minute shows as 0 rather than being skipped.
    window = [start + n * MINUTE for n in range(int((through - start) / MINUTE) + 1)]
    return TaskOutcomesReport(
        through=through,
        tasks=tuple(TaskOutcomes(n, _minutes(found[n], window)) for n in found),
    )


def _buckets(
    task: str, outcome: str, *, start: datetime, end: datetime
) -> dict[datetime, Bucket]:
    _, buckets = metrics_query(
        name=RUNTIME_METRIC,
        tags={"task": task, "outcome": outcome},
        start=start,
        end=end,
        step=int(MINUTE.total_seconds()),
    )
    return {bucket.start: bucket for bucket in buckets}


def _minutes(
    by_outcome: dict[str, dict[datetime, Bucket]], window: list[datetime]
) -> tuple[TaskMinute, ...]:
    def count(outcome: str, at: datetime) -> int:
        bucket = by_outcome[outcome].get(at)
        return bucket.count if bucket is not None else 0

    def p95(at: datetime) -> float | None:
        bucket = by_outcome["succeeded"].get(at)
        return bucket.p95 if bucket is not None else None

    return tuple(
        TaskMinute(
            at,
            count("succeeded", at),
            count("failed", at),
            count("retried", at),
            p95(at),
        )
        for at in window
    )
