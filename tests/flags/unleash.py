"""Translate Unleash client-specification states into our flag specs.

Strategies become rules, constraints conditions, segments segments and dependencies
requirements. What has no counterpart in our model raises ``Unmappable`` with one of
the reasons in ``SKIP_REASONS`` — the one list of what the harness skips and why.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

SKIP_REASONS = {
    "delta": "delta API events describe Unleash's streaming protocol, not evaluation",
    "random": "gradualRolloutRandom is random by design: no sticky rule to compare",
    "remote_address": "remoteAddress/IN_CIDR: IP ranges are not a condition we offer",
    "invalid_operator": "unknown operators are rejected when a flag is saved "
    "(validate_flag_set), so no stored flag can carry one",
    "negative_dependency": "requires lists flags that must be on; Unleash's "
    "'enabled: false' dependency (parent must be off) has no counterpart",
    "variant_override": "variant overrides by context field are not in our model "
    "(a targeting rule serving the variant does the same)",
    "variant_group": "feature-level variants under a strategy with its own groupId "
    "or rollout gate: our rule hashes gate and split with one group id",
    "transitive_dependency": "Unleash allows one level of dependency and turns a "
    "chain off; we allow chains (cycles are refused when a flag is saved)",
    "random_variant": "Unleash picks a random variant without a stickiness value; "
    "we answer TARGETING_KEY_MISSING instead",
}

OPERATORS = {
    "IN": "in",
    "NOT_IN": "not_in",
    "STR_CONTAINS": "contains",
    "STR_STARTS_WITH": "starts_with",
    "STR_ENDS_WITH": "ends_with",
    "NUM_EQ": "eq",
    "NUM_LT": "lt",
    "NUM_LTE": "lte",
    "NUM_GT": "gt",
    "NUM_GTE": "gte",
    "DATE_AFTER": "after",
    "DATE_BEFORE": "before",
    "SEMVER_EQ": "semver_eq",
    "SEMVER_LT": "semver_lt",
    "SEMVER_GT": "semver_gt",
    "SEMVER_LTE": "semver_lte",
    "SEMVER_GTE": "semver_gte",
    "REGEX": "matches",
}
LIST_OPERATORS = {"in", "not_in", "contains", "starts_with", "ends_with"}
STICKINESS = {"default": "targetingKey", "userId": "userId", "sessionId": "sessionId"}


class Unmappable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(SKIP_REASONS[reason])
        self.reason = reason


def segment_key(segment_id: int) -> str:
    return f"segment-{segment_id}"


def translate_segment(segment: Mapping[str, Any]) -> dict[str, Any]:
    conditions = [translate_constraint(c) for c in segment.get("constraints", [])]
    return {"key": segment_key(segment["id"]), "conditions": conditions}


def translate_constraint(constraint: Mapping[str, Any]) -> dict[str, Any]:
    name = constraint["operator"]
    if name == "IN_CIDR":
        raise Unmappable("remote_address")
    if name not in OPERATORS:
        raise Unmappable("invalid_operator")
    operator = OPERATORS[name]
    condition: dict[str, Any] = {
        "attribute": constraint["contextName"],
        "operator": operator,
        "negate": bool(constraint.get("inverted")),
        "case_insensitive": bool(constraint.get("caseInsensitive")),
    }
    values = constraint.get("values") or []
    if operator in LIST_OPERATORS:
        condition["values"] = values or [constraint.get("value", "")]
    else:
        condition["value"] = constraint.get("value", values[0] if values else None)
    return condition


def translate_feature(feature: Mapping[str, Any]) -> dict[str, Any]:
    variants = feature.get("variants") or []
    if any(v.get("overrides") for v in variants):
        raise Unmappable("variant_override")
    strategies = feature.get("strategies") or []
    rules = [_rule(feature, strategy) for strategy in strategies]
    for strategy in strategies:
        variants = [*variants, *(strategy.get("variants") or [])]
    return {
        "key": feature["name"],
        "type": "json",
        "enabled": bool(feature.get("enabled")),
        "variants": {
            "off": None,
            "on": None,
            **{v["name"]: v.get("payload") for v in variants},
        },
        "default_variant": "off" if rules else _default_serve(feature),
        "off_variant": "off",
        "rules": rules,
        "requires": [_requirement(d) for d in feature.get("dependencies") or []],
    }


def _default_serve(feature: Mapping[str, Any]) -> str:
    variants = feature.get("variants") or []
    if len(variants) > 1:
        raise Unmappable("random_variant")
    return variants[0]["name"] if variants else "on"


def _requirement(dependency: Mapping[str, Any]) -> dict[str, Any]:
    if dependency.get("enabled", True) is False:
        raise Unmappable("negative_dependency")
    # Unleash names "enabled without a variant" ``disabled``; our variant for it is "on".
    variants = [
        "on" if v == "disabled" else v for v in dependency.get("variants") or []
    ]
    return {"flag": dependency["feature"], "variants": variants}


def _rule(feature: Mapping[str, Any], strategy: Mapping[str, Any]) -> dict[str, Any]:
    name = strategy["name"]
    params = strategy.get("parameters") or {}
    conditions = [translate_constraint(c) for c in strategy.get("constraints") or []]
    conditions += [
        {"operator": "in_segment", "value": segment_key(s)}
        for s in strategy.get("segments") or []
    ]
    rule: dict[str, Any] = {"conditions": conditions, "serve": {"variant": "on"}}
    if name == "flexibleRollout":
        rule["rollout"] = int(params.get("rollout", 100))
        stickiness = params.get("stickiness", "default")
        rule["stickiness"] = STICKINESS.get(stickiness, stickiness)
        rule["group_id"] = params.get("groupId") or feature["name"]
    elif name in ("gradualRolloutUserId", "gradualRolloutSessionId"):
        rule["rollout"] = int(params.get("percentage", 100))
        rule["stickiness"] = "userId" if name.endswith("UserId") else "sessionId"
        rule["group_id"] = params.get("groupId") or feature["name"]
    elif name == "userWithId":
        ids = [i.strip() for i in params.get("userIds", "").split(",") if i.strip()]
        conditions.append({"attribute": "userId", "operator": "in", "values": ids})
    elif name == "gradualRolloutRandom":
        raise Unmappable("random")
    elif name == "remoteAddress":
        raise Unmappable("remote_address")
    _serve_variants(rule, feature, strategy)
    return rule


def _serve_variants(
    rule: dict[str, Any], feature: Mapping[str, Any], strategy: Mapping[str, Any]
) -> None:
    variants = strategy.get("variants") or []
    group = rule.get("group_id", feature["name"])
    if not variants and feature.get("variants"):
        variants = feature["variants"]
        if group != feature["name"] or rule.get("rollout", 100) < 100:
            raise Unmappable("variant_group")
        rule["group_id"] = feature["name"]
        stickiness = variants[0].get("stickiness") or "default"
        rule["stickiness"] = STICKINESS.get(stickiness, stickiness)
    if variants:
        rule["serve"] = {
            "split": [{"variant": v["name"], "weight": v["weight"]} for v in variants]
        }


def translate_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """Unleash's context, flattened; targetingKey is its default stickiness value."""
    flat = {k: v for k, v in context.items() if k != "properties"}
    flat.update(context.get("properties") or {})
    sticky = context.get("userId") or context.get("sessionId")
    if sticky is not None:
        flat["targetingKey"] = sticky
    flat.setdefault("currentTime", datetime.now(tz=UTC).isoformat())
    return flat
