"""Registered Python callables: ``@healing.action("name")`` on a function of
``(ctx, **kwargs)`` returning an ActionResult (sync functions run in a thread)."""

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import field_validator

from apps.healing.actions.base import (
    ActionConfig,
    ActionKind,
    ActionResult,
    HealContext,
)

F = TypeVar("F", bound=Callable[..., Any])
_registry: dict[str, Callable[..., Any]] = {}


def action(name: str) -> Callable[[F], F]:
    """Register the decorated function as the healing action ``name``."""

    def register(fn: F) -> F:
        _registry[name] = fn
        return fn

    return register


class Config(ActionConfig):
    name: str
    kwargs: dict[str, Any] = {}

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in _registry:
            raise ValueError(f"no healing action registered as {name!r}")
        return name


async def run(config: Config, ctx: HealContext) -> ActionResult:
    fn = _registry[config.name]
    if inspect.iscoroutinefunction(fn):
        result = await fn(ctx, **config.kwargs)
    else:
        result = await asyncio.to_thread(fn, ctx, **config.kwargs)
    if not isinstance(result, ActionResult):
        raise TypeError(f"healing action {config.name!r} returned {type(result)!r}")
    return result


def describe(config: Config) -> str:
    return f"call {config.name}(**{sorted(config.kwargs)})"


KIND = ActionKind("python", Config, run, describe)
