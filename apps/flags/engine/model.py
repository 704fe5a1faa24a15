"""The compiled, immutable snapshot and its evaluation: no database, no Redis."""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from apps.flags.engine.bucketing import normalized_hash, pick_weighted
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


@dataclass(frozen=True, slots=True)
class CompiledRule:
    match: Predicate
    rollout: int
    stickiness: str
    group_id: str
    variant: str
    split: tuple[tuple[str, int], ...]
    total: int
    # A rollout or a split hashes the stickiness attribute; ``lenient`` serves a
    # 100% single-variant rollout on targetingKey without one (Unleash's "default").
    sticky: bool
    lenient: bool
    # Answers are built at compile time: evaluation allocates nothing.
    hit: "Evaluation"


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
    off_result: Evaluation
    static_result: Evaluation
    default_result: Evaluation
    split_results: Mapping[str, Evaluation]
    error: str = ""

    @classmethod
    def broken(cls, key: str, error: str) -> "CompiledFlag":
        none = Evaluation(key, None, None, Reason.ERROR, ErrorCode.PARSE_ERROR, error)
        empty: Mapping[str, Any] = MappingProxyType({})
        return cls(key, "", False, empty, "", "", (), (), none, none, none, {}, error)


_MISSING = object()


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: str
    flags: Mapping[str, CompiledFlag]

    def evaluate(self, key: str, ctx: Context, _depth: int = 0) -> Evaluation:
        """Resolve ``key`` for ``ctx``: value, variant, reason and error code."""
        flag = self.flags.get(key)
        if flag is None:
            return Evaluation(
                key, None, None, Reason.ERROR, ErrorCode.FLAG_NOT_FOUND, "no such flag"
            )
        if flag.error:
            return Evaluation(
                key, None, None, Reason.ERROR, ErrorCode.PARSE_ERROR, flag.error
            )
        if not flag.enabled or (flag.requires and not self._met(flag, ctx, _depth)):
            return flag.off_result
        if not flag.rules:
            return flag.static_result
        key_missing = False
        for rule in flag.rules:
            if not rule.match(ctx):
                continue
            if not rule.sticky:
                return rule.hit
            served = _sticky_variant(rule, ctx)
            if served is _MISSING:
                key_missing = True
            elif served is not None:
                return flag.split_results[served]  # type: ignore[index]
        if key_missing:
            return Evaluation(
                key,
                None,
                None,
                Reason.ERROR,
                ErrorCode.TARGETING_KEY_MISSING,
                "a rollout matched but its stickiness attribute is missing",
            )
        return flag.default_result

    def is_on(
        self, key: str, ctx: Context, variants: frozenset[str] = frozenset()
    ) -> bool:
        """Whether ``key`` serves something other than its off variant (or one of ``variants``)."""
        return self._is_on(key, ctx, variants, 0)

    def _is_on(
        self, key: str, ctx: Context, variants: frozenset[str], depth: int
    ) -> bool:
        result = self.evaluate(key, ctx, depth)
        if result.reason is Reason.ERROR or result.reason is Reason.DISABLED:
            return False
        if variants:
            return result.variant in variants
        return result.variant != self.flags[key].off_variant

    def _met(self, flag: CompiledFlag, ctx: Context, depth: int) -> bool:
        if depth >= MAX_REQUIREMENT_DEPTH:
            return False
        return all(
            self._is_on(required, ctx, variants, depth + 1)
            for required, variants in flag.requires
        )


def _sticky_variant(rule: CompiledRule, ctx: Context) -> object:
    """The variant a rollout/split serves, None when out, _MISSING without a key."""
    if rule.rollout <= 0:
        return None
    raw = ctx.get(rule.stickiness)
    if raw is None:
        return rule.variant if rule.lenient else _MISSING
    value = raw if isinstance(raw, str) else str(raw)
    if rule.rollout < 100 and normalized_hash(value, rule.group_id) > rule.rollout:
        return None
    if len(rule.split) > 1:
        return pick_weighted(value, rule.group_id, rule.split, rule.total)
    return rule.variant
