"""Whole-set validation: pure functions over flag and segment specs (plain dicts).

Every write proposes the resulting flag set; ``validate_flag_set`` checks the changed
flags and every relation that touches them, and raises one ``ValidationFailed`` with
all errors, each keyed by its field path inside the flag (``rules.0.conditions.1.value``).
When several flags change at once, paths start with ``<key>.``.
"""

import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import jsonschema

from apps.core.exceptions import ValidationFailed
from apps.flags.engine.compiler import RuleError, compile_rule
from apps.flags.engine.conditions import ConditionError, Predicate, compile_condition
from apps.flags.models import KEY_REGEX, FlagType

Spec = Mapping[str, Any]
Errors = defaultdict[str, list[str]]

_KEY = re.compile(KEY_REGEX)
_TYPE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    FlagType.BOOLEAN: (lambda v: isinstance(v, bool), "must be true or false"),
    FlagType.STRING: (lambda v: isinstance(v, str), "must be a string"),
    FlagType.NUMBER: (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "must be a number",
    ),
    FlagType.JSON: (lambda v: True, ""),
}


def validate_flag_set(
    flags: Iterable[Spec],
    segments: Iterable[Spec],
    *,
    changed: Collection[str],
    reason: str,
    before: Mapping[str, Spec] | None = None,
) -> None:
    """Raise ValidationFailed with every error the changed flags cause in the set."""
    table = {spec["key"]: spec for spec in flags}
    segment_keys = {segment["key"] for segment in segments}
    prefix = len(changed) > 1
    errors: dict[str, list[str]] = {}
    for key in changed:
        found: Errors = defaultdict(list)
        spec = table[key]
        _check_shape(spec, found)
        _check_rules(spec, segment_keys, found)
        _check_references(spec, table, found)
        _check_relations(spec, table, found)
        if _is_protected(spec, (before or {}).get(key)) and not reason.strip():
            found["reason"].append("a protected flag is changed only with a reason")
        for path, messages in found.items():
            errors[f"{key}.{path}" if prefix else path] = messages
    if errors:
        raise ValidationFailed(fields=errors)


def validate_segment(segment: Spec) -> None:
    """Raise ValidationFailed naming each condition of ``segment`` that cannot compile."""
    found: Errors = defaultdict(list)
    if not _KEY.match(str(segment.get("key", ""))):
        found["key"].append("use lower-case letters, digits, '.', '_' and '-'")
    _check_conditions(segment.get("conditions"), {}, "conditions", found)
    if found:
        raise ValidationFailed(fields=dict(found))


def _is_protected(spec: Spec, previous: Spec | None) -> bool:
    return bool(spec.get("protected") or (previous and previous.get("protected")))


def _check_shape(spec: Spec, found: Errors) -> None:
    if not _KEY.match(str(spec["key"])):
        found["key"].append("use lower-case letters, digits, '.', '_' and '-'")
    flag_type = spec.get("type")
    if flag_type not in _TYPE_CHECKS:
        found["type"].append(f"must be one of {', '.join(FlagType.values)}")
        return
    variants = spec.get("variants")
    if not isinstance(variants, Mapping) or not variants:
        found["variants"].append("give at least one named variant")
        return
    accepts, message = _TYPE_CHECKS[flag_type]
    for name, value in variants.items():
        if not accepts(value):
            found[f"variants.{name}"].append(message)
    _check_schema(spec, found)
    for field in ("default_variant", "off_variant"):
        if spec.get(field) not in variants:
            found[field].append(f"{spec.get(field)!r} is not one of the variants")


def _check_schema(spec: Spec, found: Errors) -> None:
    schema = spec.get("json_schema")
    if schema is None:
        return
    if spec["type"] != FlagType.JSON:
        found["json_schema"].append("only json flags take a JSON Schema")
        return
    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        found["json_schema"].append(f"not a valid JSON Schema: {exc.message}")
        return
    validator = validator_class(schema)
    for name, value in spec["variants"].items():
        for error in validator.iter_errors(value):
            where = "/".join(str(p) for p in error.absolute_path) or "value"
            found[f"variants.{name}"].append(f"{where}: {error.message}")


def _check_rules(spec: Spec, segment_keys: set[str], found: Errors) -> None:
    rules = spec.get("rules")
    if not isinstance(rules, list):
        found["rules"].append("must be a list of rules")
        return
    segments: dict[str, Predicate] = dict.fromkeys(segment_keys, _unused)
    raw_variants = spec.get("variants")
    variants = raw_variants if isinstance(raw_variants, Mapping) else {}
    for i, rule in enumerate(rules):
        if not isinstance(rule, Mapping):
            found[f"rules.{i}"].append("must be an object")
            continue
        _check_conditions(
            rule.get("conditions", []), segments, f"rules.{i}.conditions", found
        )
        try:
            compile_rule(
                {**rule, "conditions": []},
                segments,
                variants,
                key=spec["key"],
                path=f"rules.{i}",
            )
        except RuleError as exc:
            found[exc.path].append(exc.message)


def _unused(ctx: Mapping[str, Any]) -> bool:
    return False


def _check_conditions(
    conditions: Any, segments: Mapping[str, Predicate], path: str, found: Errors
) -> None:
    if not isinstance(conditions, list):
        found[path].append("must be a list of conditions")
        return
    for j, condition in enumerate(conditions):
        if not isinstance(condition, Mapping):
            found[f"{path}.{j}"].append("must be an object")
            continue
        try:
            compile_condition(condition, segments)
        except ConditionError as exc:
            found[f"{path}.{j}.{exc.field}"].append(exc.message)


def _check_references(spec: Spec, table: Mapping[str, Spec], found: Errors) -> None:
    for i, requirement in enumerate(spec.get("requires") or []):
        required = table.get(requirement.get("flag"))
        if required is None:
            found[f"requires.{i}.flag"].append("no such flag")
        elif required.get("archived"):
            found[f"requires.{i}.flag"].append("is archived")
        else:
            for name in requirement.get("variants") or []:
                if name not in (required.get("variants") or {}):
                    found[f"requires.{i}.variants"].append(
                        f"{requirement['flag']} has no variant {name!r}"
                    )
    for i, other in enumerate(spec.get("conflicts") or []):
        if other not in table or other == spec["key"]:
            found[f"conflicts.{i}"].append("no such other flag")
    cycle = _requirement_cycle(spec["key"], table)
    if cycle:
        found["requires"].append(f"requirement cycle: {' → '.join(cycle)}")


def _requirement_cycle(start: str, table: Mapping[str, Spec]) -> list[str]:
    """The first cycle of requirements through ``start``, or []."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        key, trail = stack.pop()
        for requirement in table.get(key, {}).get("requires") or []:
            nxt = requirement.get("flag")
            if nxt == start:
                return [*trail, start]
            if nxt in table and nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*trail, nxt]))
    return []


def _on(spec: Spec | None) -> bool:
    return bool(spec and spec.get("enabled") and not spec.get("archived"))


def _check_relations(spec: Spec, table: Mapping[str, Spec], found: Errors) -> None:
    key = spec["key"]
    if _on(spec):
        for requirement in spec.get("requires") or []:
            other = requirement.get("flag")
            if other in table and not _on(table[other]):
                found["enabled"].append(f"requires {other}, which is off")
    for other in table.values():
        if other["key"] == key or other.get("archived"):
            continue
        if any(r.get("flag") == key for r in other.get("requires") or []):
            if spec.get("archived"):
                found["archived"].append(f"{other['key']} requires this flag")
            elif _on(other) and not _on(spec):
                found["enabled"].append(f"{other['key']} requires this flag and is on")
        if not _on(other):
            continue
        conflicting = key in (other.get("conflicts") or []) or other["key"] in (
            spec.get("conflicts") or []
        )
        if conflicting and _on(spec):
            found["enabled"].append(f"conflicts with {other['key']}, which is on")
