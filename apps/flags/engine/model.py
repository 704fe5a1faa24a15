"""The compiled, immutable snapshot and its evaluation: no database, no Redis."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from apps.flags.engine.conditions import Context, Predicate

# Requirements chain through other flags; validation forbids cycles, this bounds them.
MAX_REQUIREMENT_DEPTH = 16


class Reason(StrEnum):
    STATIC = "STATIC"
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    DEFAULT = "DEFAULT"
    DISABLED = "DISABLED"
    ERROR = "ERROR"


class ErrorCode(StrEnum):
    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    PARSE_ERROR = "PARSE_ERROR"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"


@dataclass(frozen=True, slots=True)
class Evaluation:
    key: str
    value: Any
    variant: str | None
    reason: Reason
    error_code: ErrorCode | None = None
    error_message: str = ""

    @property
    def failed(self) -> bool:
        return self.reason is Reason.ERROR


class Runner(Protocol):
    """A compiled flag's evaluation: its answer for a context (``depth``: how deep in
    a chain of requirements the evaluation is)."""

    def __call__(self, ctx: Context, depth: int = 0, /) -> Evaluation: ...


# A rollout or split's answer for a context once its conditions hold: an Evaluation,
# None when the context is outside the rollout, MISSING without a stickiness value.
Gate = Callable[[Context], "Evaluation | None"]


# A gate's answer (compared by identity) when the context lacks the stickiness value.
MISSING = Evaluation(
    "", None, None, Reason.ERROR, ErrorCode.TARGETING_KEY_MISSING, "no stickiness value"
)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    conditions: tuple[Predicate, ...]  # all must hold
    gate: Gate | None  # None: serves ``hit`` whenever the conditions hold
    # Answers are built at compile time: evaluation allocates nothing.
    hit: Evaluation


@dataclass(frozen=True, slots=True)
class CompiledFlag:
    key: str
    type: str
    enabled: bool
    variants: Mapping[str, Any]
    default_variant: str
    off_variant: str
    rules: tuple[CompiledRule, ...]
    requires: tuple[tuple[str, frozenset[str]], ...]
    run: Runner
    error: str = ""

    @classmethod
    def broken(cls, key: str, error: str) -> "CompiledFlag":
        none = Evaluation(key, None, None, Reason.ERROR, ErrorCode.PARSE_ERROR, error)
        empty: Mapping[str, Any] = MappingProxyType({})
        return cls(key, "", False, empty, "", "", (), (), constant(none), error)


def constant(result: Evaluation) -> Runner:
    """A runner that always answers ``result``."""

    def run(ctx: Context, depth: int = 0) -> Evaluation:
        return result

    return run


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: str
    flags: Mapping[str, CompiledFlag]
    # key -> CompiledFlag.run, a plain dict: the one lookup on the hot path.
    runners: Mapping[str, Runner]

    def evaluate(self, key: str, ctx: Context, _depth: int = 0) -> Evaluation:
        """Resolve ``key`` for ``ctx``: value, variant, reason and error code."""
        run = self.runners.get(key)
        if run is None:
            return not_found(key)
        return run(ctx, _depth)

    def is_on(
        self, key: str, ctx: Context, variants: frozenset[str] = frozenset()
    ) -> bool:
        """Whether ``key`` serves something other than its off variant (or one of ``variants``)."""
        return is_on(self.flags.get(key), ctx, variants, 0)


def not_found(key: str) -> Evaluation:
    return Evaluation(
        key, None, None, Reason.ERROR, ErrorCode.FLAG_NOT_FOUND, "no such flag"
    )


def is_on(
    flag: CompiledFlag | None, ctx: Context, variants: frozenset[str], depth: int
) -> bool:
    """Whether ``flag`` (None: missing) serves other than its off variant, or one of
    ``variants`` when given; errors and DISABLED count as off."""
    if flag is None:
        return False
    result = flag.run(ctx, depth)
    if result.reason is Reason.ERROR or result.reason is Reason.DISABLED:
        return False
    if variants:
        return result.variant in variants
    return result.variant != flag.off_variant
