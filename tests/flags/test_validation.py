import pytest

from apps.core.exceptions import ValidationFailed
from apps.flags.validation import validate_flag_set, validate_segment
from tests.flags.builders import boolean_spec, cond, rule

SEGMENTS = [{"key": "staff", "conditions": []}]


def _errors(*specs, changed=("f",), reason="because", before=None) -> dict:
    try:
        validate_flag_set(
            specs, SEGMENTS, changed=changed, reason=reason, before=before
        )
    except ValidationFailed as exc:
        return exc.fields
    return {}


CASES = {
    "variant_type": (
        [boolean_spec("f", variants={"on": "yes", "off": False})],
        [boolean_spec("f")],
        "variants.on",
    ),
    "string_type": (
        [boolean_spec("f", type="string", variants={"on": 1, "off": "b"})],
        [boolean_spec("f", type="string", variants={"on": "a", "off": "b"})],
        "variants.on",
    ),
    "number_type": (
        [boolean_spec("f", type="number", variants={"on": True, "off": 0})],
        [boolean_spec("f", type="number", variants={"on": 1.5, "off": 0})],
        "variants.on",
    ),
    "json_schema": (
        [
            boolean_spec(
                "f",
                type="json",
                json_schema={"type": "object", "required": ["limit"]},
                variants={"on": {"limit": 3}, "off": {}},
            )
        ],
        [
            boolean_spec(
                "f",
                type="json",
                json_schema={"type": "object"},
                variants={"on": {"limit": 3}, "off": {}},
            )
        ],
        "variants.off",
    ),
    "default_variant": (
        [boolean_spec("f", default_variant="maybe")],
        [boolean_spec("f", default_variant="off")],
        "default_variant",
    ),
    "off_variant": (
        [boolean_spec("f", off_variant="nope")],
        [boolean_spec("f", off_variant="on")],
        "off_variant",
    ),
    "unknown_segment": (
        [boolean_spec("f", rules=[rule({"operator": "in_segment", "value": "vip"})])],
        [boolean_spec("f", rules=[rule({"operator": "in_segment", "value": "staff"})])],
        "rules.0.conditions.0.value",
    ),
    "unknown_required_flag": (
        [boolean_spec("f", requires=[{"flag": "ghost", "variants": []}])],
        [
            boolean_spec("f", requires=[{"flag": "g", "variants": []}]),
            boolean_spec("g"),
        ],
        "requires.0.flag",
    ),
    "unknown_conflict": (
        [boolean_spec("f", conflicts=["ghost"])],
        [boolean_spec("f", conflicts=["g"]), boolean_spec("g", enabled=False)],
        "conflicts.0",
    ),
    "requirement_cycle": (
        [
            boolean_spec("f", requires=[{"flag": "g", "variants": []}]),
            boolean_spec("g", requires=[{"flag": "f", "variants": []}]),
        ],
        [
            boolean_spec("f", requires=[{"flag": "g", "variants": []}]),
            boolean_spec("g"),
        ],
        "requires",
    ),
    "requirement_off": (
        [
            boolean_spec("f", requires=[{"flag": "g", "variants": []}]),
            boolean_spec("g", enabled=False),
        ],
        [
            boolean_spec("f", enabled=False, requires=[{"flag": "g", "variants": []}]),
            boolean_spec("g", enabled=False),
        ],
        "enabled",
    ),
    "switching_off_a_requirement": (
        [
            boolean_spec("f", enabled=False),
            boolean_spec("g", requires=[{"flag": "f", "variants": []}]),
        ],
        [
            boolean_spec("f", enabled=False),
            boolean_spec("g", enabled=False, requires=[{"flag": "f", "variants": []}]),
        ],
        "enabled",
    ),
    "conflict_both_on": (
        [boolean_spec("f", conflicts=["g"]), boolean_spec("g")],
        [boolean_spec("f", conflicts=["g"]), boolean_spec("g", enabled=False)],
        "enabled",
    ),
    "archive_required": (
        [
            boolean_spec("f", archived=True, enabled=False),
            boolean_spec("g", enabled=False, requires=[{"flag": "f", "variants": []}]),
        ],
        [boolean_spec("f", archived=True, enabled=False), boolean_spec("g")],
        "archived",
    ),
    "bad_regex": (
        [boolean_spec("f", rules=[rule(cond("a", "matches", "(unclosed"))])],
        [boolean_spec("f", rules=[rule(cond("a", "matches", "^(closed)$"))])],
        "rules.0.conditions.0.value",
    ),
    "regex_too_long": (
        [boolean_spec("f", rules=[rule(cond("a", "matches", "a" * 300))])],
        [boolean_spec("f", rules=[rule(cond("a", "matches", "a" * 200))])],
        "rules.0.conditions.0.value",
    ),
    "regex_backreference": (
        [boolean_spec("f", rules=[rule(cond("a", "matches", r"^(a)\1$"))])],
        [boolean_spec("f", rules=[rule(cond("a", "matches", r"^(a)a$"))])],
        "rules.0.conditions.0.value",
    ),
    "bad_semver": (
        [boolean_spec("f", rules=[rule(cond("a", "semver_gt", "1.2"))])],
        [boolean_spec("f", rules=[rule(cond("a", "semver_gt", "1.2.0"))])],
        "rules.0.conditions.0.value",
    ),
    "unknown_operator": (
        [boolean_spec("f", rules=[rule(cond("a", "sounds_like", "x"))])],
        [boolean_spec("f", rules=[rule(cond("a", "equals", "x"))])],
        "rules.0.conditions.0.operator",
    ),
    "split_variant": (
        [
            boolean_spec(
                "f", rules=[{"serve": {"split": [{"variant": "x", "weight": 1}]}}]
            )
        ],
        [
            boolean_spec(
                "f", rules=[{"serve": {"split": [{"variant": "on", "weight": 1}]}}]
            )
        ],
        "rules.0.serve.split.0.variant",
    ),
    "rollout_range": (
        [boolean_spec("f", rules=[rule(rollout=101)])],
        [boolean_spec("f", rules=[rule(rollout=100)])],
        "rules.0.rollout",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_flag_set__rule_broken__error_on_its_field(case):
    failing, _, path = CASES[case]

    assert path in _errors(*failing)


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_flag_set__rule_respected__no_error(case):
    _, passing, _ = CASES[case]

    assert _errors(*passing) == {}


def test_validate_flag_set__protected_without_reason__error_on_reason():
    spec = boolean_spec("f", protected=True)

    assert "reason" in _errors(spec, reason=" ")
    assert _errors(spec, reason="incident 12") == {}


def test_validate_flag_set__protection_removed_without_reason__error_on_reason():
    before = {"f": boolean_spec("f", protected=True)}

    assert "reason" in _errors(boolean_spec("f"), reason="", before=before)


def test_validate_flag_set__several_errors__all_returned_together():
    spec = boolean_spec(
        "f",
        variants={"on": "yes", "off": False},
        rules=[rule(cond("a", "matches", "("), cond("b", "semver_eq", "x"))],
        requires=[{"flag": "ghost", "variants": []}],
    )

    errors = _errors(spec)

    assert {
        "variants.on",
        "rules.0.conditions.0.value",
        "rules.0.conditions.1.value",
        "requires.0.flag",
    } <= set(errors)


def test_validate_flag_set__several_changed__paths_start_with_key():
    errors = _errors(
        boolean_spec("f", default_variant="x"), boolean_spec("g"), changed=("f", "g")
    )

    assert "f.default_variant" in errors


def test_validate_segment__bad_condition__error_on_its_path():
    with pytest.raises(ValidationFailed) as caught:
        validate_segment({"key": "s", "conditions": [cond("a", "lt", "many")]})

    assert "conditions.0.value" in caught.value.fields
    validate_segment({"key": "s", "conditions": [cond("a", "lt", 3)]})
