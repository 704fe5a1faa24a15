"""Run a batch of checks concurrently, each with its timeout and retries.

Each check runs through its component's breaker (``component:<slug>``): an unhealthy
outcome counts as a failure, and an open breaker answers unhealthy without calling out.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from apps import breakers
from apps.breakers import BreakerOpenError
from apps.components.checkers import KINDS
from apps.components.checkers.base import UNHEALTHY, CheckOutcome, Stopwatch
from apps.components.checkers.http import session_scope

log = structlog.get_logger(__name__)
CONCURRENCY = 200


@dataclass(frozen=True, slots=True)
class CheckJob:
    component_id: int
    kind: str
    config: dict[str, Any]
    timeout: float
    retries: int
    # Names the check's breaker, ``component:<slug>``.
    slug: str = ""


def run_jobs(jobs: list[CheckJob]) -> list[CheckOutcome]:
    """The outcomes of ``jobs``, in order; blocks until all are done."""
    return asyncio.run(_run_all(jobs))


async def _run_all(jobs: list[CheckJob]) -> list[CheckOutcome]:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def bounded(job: CheckJob) -> CheckOutcome:
        async with limit:
            return await run_job(job)

    async with session_scope():
        return list(await asyncio.gather(*(bounded(job) for job in jobs)))


async def run_job(job: CheckJob) -> CheckOutcome:
    """One check with up to ``retries`` more attempts while it fails."""
    kind = KINDS.get(job.kind)
    if kind is None:
        return CheckOutcome(UNHEALTHY, 0.0, f"unknown checker kind {job.kind!r}")
    try:
        config = kind.config_model.model_validate(job.config)
    except ValidationError as exc:
        return CheckOutcome(
            UNHEALTHY, 0.0, f"invalid config: {exc.error_count()} error(s)"
        )
    try:
        async with breakers.guard(f"component:{job.slug}"):
            outcome = await _attempts(kind.check, config, job)
            if outcome.status == UNHEALTHY:
                raise _CheckFailed(outcome)
    except BreakerOpenError as exc:
        return CheckOutcome(UNHEALTHY, 0.0, exc.message, {"breaker": exc.extra})
    except _CheckFailed as failed:
        return failed.outcome
    return outcome


class _CheckFailed(Exception):
    """Carries an unhealthy outcome out of the guard, so the breaker counts it."""

    def __init__(self, outcome: CheckOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


async def _attempts(check: Any, config: Any, job: CheckJob) -> CheckOutcome:
    outcome = await _attempt(check, config, job)
    for attempt in range(job.retries):
        if outcome.status != UNHEALTHY:
            break
        outcome = await _attempt(check, config, job)
        outcome.details.setdefault("attempts", attempt + 2)
    return outcome


async def _attempt(check: Any, config: Any, job: CheckJob) -> CheckOutcome:
    watch = Stopwatch()
    try:
        outcome: CheckOutcome = await asyncio.wait_for(
            check(config, job.timeout), job.timeout
        )
    except TimeoutError:
        return CheckOutcome(UNHEALTHY, watch.ms(), f"timed out after {job.timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - any failure of the target is a result
        message = f"{type(exc).__name__}: {exc}"[:500]
        log.debug(
            "component.check_failed", component_id=job.component_id, error=message
        )
        return CheckOutcome(UNHEALTHY, watch.ms(), message)
    return outcome
