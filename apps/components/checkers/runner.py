"""Run a batch of checks concurrently, each with its timeout and retries.

Each check runs through its component's breaker (``component:<slug>``): an unhealthy
outcome counts as a failure, and an open breaker answers unhealthy without calling out.

A process keeps one event loop and one HTTP session (with its connection pool) per
thread across batches, instead of a new loop, session and TCP connections for every
batch. A forked child makes its own (``os.getpid()`` changes); ``runner_close`` ends
them (the worker calls it as a child shuts down).
"""

import asyncio
import functools
import os
import threading
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from pydantic import ValidationError

from apps import breakers
from apps.breakers import BreakerOpenError
from apps.components.checkers import KINDS
from apps.components.checkers.base import (
    UNHEALTHY,
    CheckConfig,
    CheckOutcome,
    Stopwatch,
)
from apps.components.checkers.http import session_bound, session_new

log = structlog.get_logger(__name__)
CONCURRENCY = 200
# Validated configs kept per process, keyed by kind and stored JSON text.
CONFIG_CACHE_SIZE = 32768


@dataclass(frozen=True, slots=True)
class CheckJob:
    component_id: int
    kind: str
    # The config, or its JSON text as stored (validated once per text, then cached).
    config: dict[str, Any] | str
    timeout: float
    retries: int
    # Names the check's breaker, ``component:<slug>``.
    slug: str = ""


class _Runtime:
    """One thread's event loop and HTTP session, kept across batches."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.session: aiohttp.ClientSession | None = None

    def session_get(self) -> aiohttp.ClientSession:
        """The session, made on first use (inside the running loop)."""
        if self.session is None or self.session.closed:
            self.session = session_new()
        return self.session

    def close(self) -> None:
        loop = self.loop
        try:
            _cancel_pending(loop)
            if self.session is not None:
                loop.run_until_complete(self.session.close())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


_local = threading.local()


def _runtime() -> _Runtime:
    runtime: _Runtime | None = getattr(_local, "runtime", None)
    # After a fork the parent's loop and connections are not ours to use or close.
    if runtime is None or runtime.pid != os.getpid() or runtime.loop.is_closed():
        runtime = _local.runtime = _Runtime()
    return runtime


def runner_close() -> None:
    """Close this thread's event loop and HTTP session, if it made them."""
    runtime: _Runtime | None = getattr(_local, "runtime", None)
    _local.runtime = None
    if runtime is not None and runtime.pid == os.getpid():
        runtime.close()


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def run_jobs(jobs: list[CheckJob]) -> list[CheckOutcome]:
    """The outcomes of ``jobs``, in order; blocks until all are done."""
    runtime = _runtime()
    try:
        return runtime.loop.run_until_complete(_run_all(runtime, jobs))
    except BaseException:
        # Interrupted (a time limit, a signal): leave no task behind for the next batch.
        runner_close()
        raise


async def _run_all(runtime: _Runtime, jobs: list[CheckJob]) -> list[CheckOutcome]:
    limit = asyncio.Semaphore(CONCURRENCY)

    async def bounded(job: CheckJob) -> CheckOutcome:
        async with limit:
            return await run_job(job)

    with session_bound(runtime.session_get()):
        return list(await asyncio.gather(*(bounded(job) for job in jobs)))


@functools.lru_cache(maxsize=CONFIG_CACHE_SIZE)
def _config_from_text(kind: str, text: str) -> CheckConfig | str:
    """The validated config for stored JSON ``text``, or why it is invalid."""
    try:
        return KINDS[kind].config_model.model_validate_json(text)
    except ValidationError as exc:
        return _invalid(exc)


def _config(kind: str, config: dict[str, Any] | str) -> CheckConfig | str:
    if isinstance(config, str):
        return _config_from_text(kind, config)
    try:
        return KINDS[kind].config_model.model_validate(config)
    except ValidationError as exc:
        return _invalid(exc)


def _invalid(exc: ValidationError) -> str:
    return f"invalid config: {exc.error_count()} error(s)"


async def run_job(job: CheckJob) -> CheckOutcome:
    """One check with up to ``retries`` more attempts while it fails."""
    kind = KINDS.get(job.kind)
    if kind is None:
        return CheckOutcome(UNHEALTHY, 0.0, f"unknown checker kind {job.kind!r}")
    config = _config(job.kind, job.config)
    if isinstance(config, str):
        return CheckOutcome(UNHEALTHY, 0.0, config)
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
        # asyncio.timeout, not wait_for: no extra task per check.
        async with asyncio.timeout(job.timeout):
            outcome: CheckOutcome = await check(config, job.timeout)
    except TimeoutError:
        return CheckOutcome(UNHEALTHY, watch.ms(), f"timed out after {job.timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - any failure of the target is a result
        message = f"{type(exc).__name__}: {exc}"[:500]
        log.debug(
            "component.check_failed", component_id=job.component_id, error=message
        )
        return CheckOutcome(UNHEALTHY, watch.ms(), message)
    return outcome
