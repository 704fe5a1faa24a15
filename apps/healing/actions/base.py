"""What every healing action shares: its context, its result and its kind record."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from apps.components.checkers.base import CheckConfig

OUTPUT_LIMIT = 4000


@dataclass(frozen=True, slots=True)
class HealContext:
    """What an action is told about the attempt it serves."""

    slug: str
    attempt: int
    reason: str
    trace_id: str
    timeout: float


@dataclass(frozen=True, slots=True)
class ActionResult:
    """Whether the action did its work, and what it said (truncated)."""

    ok: bool
    output: str = ""


def excerpt(text: str) -> str:
    """``text`` cut to its last OUTPUT_LIMIT characters (where errors usually are)."""
    return text if len(text) <= OUTPUT_LIMIT else "…" + text[-OUTPUT_LIMIT:]


ActionConfig = CheckConfig
ActionFunction = Callable[[Any, HealContext], Awaitable[ActionResult]]


@dataclass(frozen=True, slots=True)
class ActionKind:
    name: str
    config_model: type[ActionConfig]
    run: ActionFunction
    # A one-line account of what ``run`` would do, for dry runs and the audit.
    describe: Callable[[Any], str]
