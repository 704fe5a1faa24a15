"""``breakers.guard(name)``: a sync/async context manager and a decorator.

As a context manager it raises ``BreakerOpenError`` (a ``with`` body cannot be
skipped); as a decorator an optional ``fallback(exc)`` answers instead when the
breaker refuses the call or the call fails in a way that counts. Ignored
exceptions always propagate.
"""

import asyncio
import functools
import inspect
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from apps.breakers.config import State
from apps.breakers.engine import LocalBreaker
from apps.breakers.exceptions import BreakerOpenError

F = TypeVar("F", bound=Callable[..., Any])
Fallback = Callable[[Exception], Any]
_perf = time.perf_counter
_CLOSED = State.CLOSED


class Guard:
    """One use of a breaker; ``guard()`` makes a new one per ``with``."""

    __slots__ = ("_breaker", "_epoch", "_fallback", "_start")

    def __init__(self, breaker: LocalBreaker, fallback: Fallback | None) -> None:
        self._breaker = breaker
        self._fallback = fallback

    def __enter__(self) -> "Guard":
        breaker = self._breaker
        self._epoch = breaker.epoch if breaker.state is _CLOSED else breaker.acquire()
        self._start = _perf()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        breaker = self._breaker
        if exc is None:
            breaker.succeeded(self._epoch, _perf() - self._start)
        else:
            breaker.record(self._epoch, _perf() - self._start, breaker.classify(exc))

    async def __aenter__(self) -> "Guard":
        epoch = self._breaker.acquire_fast()
        if epoch is None:
            # A half-open permit is a Redis round trip: keep it off the event loop.
            epoch = await asyncio.to_thread(self._breaker.acquire_permit)
        self._epoch = epoch
        self._start = _perf()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            return _wrap_async(fn, self._breaker, self._fallback)  # type: ignore[return-value]
        return _wrap_sync(fn, self._breaker, self._fallback)  # type: ignore[return-value]


def _wrap_sync(
    fn: Callable[..., Any], breaker: LocalBreaker, fallback: Fallback | None
) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            epoch = breaker.epoch if breaker.state is _CLOSED else breaker.acquire()
        except BreakerOpenError as exc:
            return _fall_back(fallback, exc)
        start = _perf()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            failed = breaker.classify(exc)
            breaker.record(epoch, _perf() - start, failed)
            if failed and isinstance(exc, Exception):
                return _fall_back(fallback, exc)
            raise
        # LocalBreaker.succeeded inlined: the hot path saves a call.
        duration = _perf() - start
        if epoch == breaker.quiet_epoch and duration < breaker.slow_s:
            next(breaker.quiet_calls)
            breaker.touched = True
        else:
            breaker.record(epoch, duration, False)
        return result

    return wrapper


def _wrap_async(
    fn: Callable[..., Any], breaker: LocalBreaker, fallback: Fallback | None
) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            epoch = (
                breaker.epoch if breaker.state is _CLOSED else breaker.acquire_fast()
            )
            if epoch is None:
                epoch = await asyncio.to_thread(breaker.acquire_permit)
        except BreakerOpenError as exc:
            return await _fall_back_async(fallback, exc)
        start = _perf()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            failed = breaker.classify(exc)
            breaker.record(epoch, _perf() - start, failed)
            if failed and isinstance(exc, Exception):
                return await _fall_back_async(fallback, exc)
            raise
        breaker.succeeded(epoch, _perf() - start)
        return result

    return wrapper


def _fall_back(fallback: Fallback | None, exc: Exception) -> Any:
    if fallback is None:
        raise exc
    return fallback(exc)


async def _fall_back_async(fallback: Fallback | None, exc: Exception) -> Any:
    result = _fall_back(fallback, exc)
    return await result if inspect.isawaitable(result) else result
