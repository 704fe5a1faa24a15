"""Compile flag and segment specs (plain JSON dicts) into an immutable snapshot."""

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import mmh3

from apps.flags.engine.bucketing import pick_weighted
from apps.flags.engine.conditions import (
    ConditionError,
    Context,
    Predicate,
    compile_condition,
)
from apps.flags.engine.model import (
    MAX_REQUIREMENT_DEPTH,
    MISSING,
    CompiledFlag,
    CompiledRule,
    ErrorCode,
    Evaluation,
    Gate,
    Reason,
    Runner,
    Snapshot,
    constant,
    is_on,
)
from apps.flags.engine.runners import rules_runner

DEFAULT_STICKINESS = "targetingKey"


class RuleError(ValueError):
    """A spec that cannot compile; ``path`` is the field path inside the flag."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def compile_snapshot(
    flags: Iterable[Mapping[str, Any]],
    segments: Iterable[Mapping[str, Any]],
    *,
    version: str,
) -> Snapshot:
    """Build the evaluation snapshot; a flag that fails to compile serves PARSE_ERROR."""
    compiled_segments: dict[str, Predicate] = {}
    for segment in segments:
        try:
            compiled_segments[segment["key"]] = compile_conditions(
                segment.get("conditions") or [], {}, path="conditions"
            )
        except RuleError:
            compiled_segments[segment["key"]] = _never
    # Requirements are looked up here when evaluated, so their order does not matter.
    table: dict[str, CompiledFlag] = {}
    for spec in flags:
        if spec.get("archived"):
            continue
        try:
            table[spec["key"]] = compile_flag(spec, compiled_segments, table)
        except (RuleError, KeyError, TypeError, ValueError) as exc:
            table[spec["key"]] = CompiledFlag.broken(spec["key"], str(exc))
    return Snapshot(
        version=version,
        flags=MappingProxyType(table),
        runners={key: flag.run for key, flag in table.items()},
    )


def _never(ctx: Context) -> bool:
    return False


def compile_flag(
    spec: Mapping[str, Any],
    segments: Mapping[str, Predicate],
    flags: Mapping[str, CompiledFlag],
) -> CompiledFlag:
    """Compile one flag (its requirements resolve in ``flags`` when evaluated);
    raises RuleError naming the first wrong field."""
    variants = dict(spec["variants"])
    for field in ("default_variant", "off_variant"):
        if spec[field] not in variants:
            raise RuleError(field, f"{spec[field]!r} is not one of the variants")
    key = spec["key"]
    rules = tuple(
        compile_rule(rule, segments, variants, key=key, path=f"rules.{i}")
        for i, rule in enumerate(spec.get("rules") or [])
    )
    requires = tuple(
        (req["flag"], frozenset(req.get("variants") or ()))
        for req in spec.get("requires") or []
    )
    enabled = bool(spec["enabled"])
    off = Evaluation(
        key, variants[spec["off_variant"]], spec["off_variant"], Reason.DISABLED
    )
    if not enabled:
        run = constant(off)
    elif rules:
        default = spec["default_variant"]
        run = rules_runner(
            rules,
            default=Evaluation(key, variants[default], default, Reason.DEFAULT),
            key_missing=Evaluation(
                key,
                None,
                None,
                Reason.ERROR,
                ErrorCode.TARGETING_KEY_MISSING,
                "a rollout matched but its stickiness attribute is missing",
            ),
        )
    else:
        run = constant(
            Evaluation(
                key,
                variants[spec["default_variant"]],
                spec["default_variant"],
                Reason.STATIC,
            )
        )
    if enabled and requires:
        run = _requiring(run, requires, flags, off)
    return CompiledFlag(
        key=key,
        type=spec["type"],
        enabled=enabled,
        variants=MappingProxyType(variants),
        default_variant=spec["default_variant"],
        off_variant=spec["off_variant"],
        rules=rules,
        requires=requires,
        run=run,
    )


def _requiring(
    run: Runner,
    requires: tuple[tuple[str, frozenset[str]], ...],
    flags: Mapping[str, CompiledFlag],
    off: Evaluation,
) -> Runner:
    """``run`` behind the flag's requirements: ``off`` unless each required flag is
    on (or serves one of the listed variants)."""

    def requiring(ctx: Context, depth: int = 0) -> Evaluation:
        if depth >= MAX_REQUIREMENT_DEPTH:
            return off
        for required, variants in requires:
            if not is_on(flags.get(required), ctx, variants, depth + 1):
                return off
        return run(ctx, depth)

    return requiring


def compile_conditions(
    conditions: list[Mapping[str, Any]], segments: Mapping[str, Predicate], *, path: str
) -> Predicate:
    """All conditions must hold; one closure for the whole list."""
    chain = compile_condition_list(conditions, segments, path=path)
    if not chain:
        return _always
    if len(chain) == 1:
        return chain[0]

    def all_hold(ctx: Context) -> bool:
        # A plain loop: all() over a generator costs ~0.3 µs more per call.
        for predicate in chain:  # noqa: SIM110
            if not predicate(ctx):
                return False
        return True

    return all_hold


def compile_condition_list(
    conditions: list[Mapping[str, Any]], segments: Mapping[str, Predicate], *, path: str
) -> tuple[Predicate, ...]:
    """One predicate per condition; raises RuleError naming the wrong one."""
    if not isinstance(conditions, list):
        raise RuleError(path, "must be a list of conditions")
    predicates = []
    for i, condition in enumerate(conditions):
        try:
            predicates.append(compile_condition(condition, segments))
        except ConditionError as exc:
            raise RuleError(f"{path}.{i}.{exc.field}", exc.message) from exc
    return tuple(predicates)


def _always(ctx: Context) -> bool:
    return True


def compile_rule(
    rule: Mapping[str, Any],
    segments: Mapping[str, Predicate],
    variants: Mapping[str, Any],
    *,
    key: str,
    path: str,
) -> CompiledRule:
    """One targeting rule: conditions, an optional rollout gate, a variant or a split."""
    conditions = compile_condition_list(
        rule.get("conditions") or [], segments, path=f"{path}.conditions"
    )
    rollout = rule.get("rollout", 100)
    if isinstance(rollout, bool) or not isinstance(rollout, int | float):
        raise RuleError(f"{path}.rollout", "give a percentage from 0 to 100")
    if not 0 <= rollout <= 100:
        raise RuleError(f"{path}.rollout", "give a percentage from 0 to 100")
    serve = rule.get("serve")
    if not isinstance(serve, Mapping) or ("variant" in serve) == ("split" in serve):
        raise RuleError(f"{path}.serve", "serve either a variant or a split")
    split: tuple[tuple[str, int], ...] = ()
    if "split" in serve:
        split = _cumulative(serve["split"], variants, path=f"{path}.serve.split")
        variant = split[0][0]
    else:
        variant = serve["variant"]
        if variant not in variants:
            raise RuleError(f"{path}.serve.variant", f"unknown variant {variant!r}")
    hit = Evaluation(key, variants[variant], variant, Reason.TARGETING_MATCH)
    # A rollout or a split hashes the stickiness attribute; others just serve ``hit``.
    if "rollout" not in rule and len(split) < 2:
        return CompiledRule(conditions=conditions, gate=None, hit=hit)
    stickiness = rule.get("stickiness") or DEFAULT_STICKINESS
    gate = _gate(
        rollout=int(rollout),
        stickiness=stickiness,
        group_id=rule.get("group_id") or key,
        split=split,
        answers={
            name: Evaluation(key, value, name, Reason.SPLIT)
            for name, value in variants.items()
        },
        variant=variant,
        # A 100% single-variant rollout on targetingKey serves without one
        # (Unleash's "default" strategy).
        lenient=stickiness == DEFAULT_STICKINESS and rollout >= 100 and len(split) < 2,
    )
    return CompiledRule(conditions=conditions, gate=gate, hit=hit)


def _gate(
    *,
    rollout: int,
    stickiness: str,
    group_id: str,
    split: tuple[tuple[str, int], ...],
    answers: Mapping[str, Evaluation],
    variant: str,
    lenient: bool,
) -> Gate:
    """Unleash's flexibleRollout (bucket 1..100 of ``"<groupId>:<value>"`` at most
    ``rollout``), then its variant pick for a split; see ``bucketing``."""
    if rollout <= 0:
        return _outside
    single = answers[variant]
    without_value = single if lenient else MISSING
    partial = rollout < 100
    multi = len(split) > 1
    prefix = f"{group_id}:"
    murmur3 = mmh3.hash

    def gate(ctx: Context) -> Evaluation | None:
        raw = ctx.get(stickiness)
        if raw is None:
            return without_value
        value = raw if raw.__class__ is str or isinstance(raw, str) else str(raw)
        # bucketing.normalized_hash, inlined: unsigned murmur3, seed 0, 1..100.
        if partial and murmur3(prefix + value, 0, False) % 100 + 1 > rollout:
            return None
        if multi:
            return answers[pick_weighted(value, group_id, split, split[-1][1])]
        return single

    return gate


def _outside(ctx: Context) -> None:
    return None


def _cumulative(
    split: Any, variants: Mapping[str, Any], *, path: str
) -> tuple[tuple[str, int], ...]:
    if not isinstance(split, list) or not split:
        raise RuleError(path, "give a list of {variant, weight}")
    cumulative, total = [], 0
    for i, part in enumerate(split):
        name, weight = part.get("variant"), part.get("weight")
        if name not in variants:
            raise RuleError(f"{path}.{i}.variant", f"unknown variant {name!r}")
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise RuleError(f"{path}.{i}.weight", "give a whole number ≥ 0")
        total += weight
        if weight:
            cumulative.append((name, total))
    if total == 0:
        raise RuleError(path, "the weights add up to 0")
    return tuple(cumulative)
