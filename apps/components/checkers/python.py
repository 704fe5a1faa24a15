"""Registered Python callables: ``@components.checker("name")``.

A callable takes the config's ``params`` as keyword arguments and returns a
CheckOutcome or a bool; it may be async. Sync ones run in a thread.
"""

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import Field

from apps.components.checkers.base import (
    HEALTHY,
    UNHEALTHY,
    CheckConfig,
    CheckerKind,
    CheckOutcome,
    Stopwatch,
)

F = TypeVar("F", bound=Callable[..., Any])
_registry: dict[str, Callable[..., Any]] = {}


def checker(name: str) -> Callable[[F], F]:
    """Register the decorated function as the Python checker ``name``."""

    def register(function: F) -> F:
        if name in _registry and _registry[name] is not function:
            raise ValueError(f"Python checker {name!r} is already registered")
        _registry[name] = function
        return function

    return register


def registered() -> list[str]:
    """The names of the registered Python checkers."""
    return sorted(_registry)


class Config(CheckConfig):
    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


async def check(config: Config, timeout: float) -> CheckOutcome:
    function = _registry.get(config.name)
    if function is None:
        return CheckOutcome(UNHEALTHY, 0.0, f"no Python checker named {config.name!r}")
    watch = Stopwatch()
    if inspect.iscoroutinefunction(function):
        value = await function(**config.params)
    else:
        value = await asyncio.to_thread(function, **config.params)
    if isinstance(value, CheckOutcome):
        return value
    status = HEALTHY if value else UNHEALTHY
    return CheckOutcome(status, watch.ms(), f"{config.name} returned {bool(value)}")


KIND = CheckerKind("python", Config, check)
