"""Conditions on context attributes, compiled once into closures.

A condition is ``{"attribute", "operator", "value" | "values", "negate",
"case_insensitive"}`` (``in_segment`` names a segment in ``value`` instead of an
attribute). A missing attribute fails every operator except ``not_equals`` and
``not_in``; ``negate`` inverts the final answer, as Unleash's ``inverted`` does.
"""

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import semver

Context = Mapping[str, Any]
Predicate = Callable[[Context], bool]

MAX_REGEX_LENGTH = 256
LIST_OPERATORS = frozenset({"in", "not_in", "contains", "starts_with", "ends_with"})
TEXT_OPERATORS = frozenset({"equals", "not_equals", "matches"})
NUMBER_OPERATORS = {
    "eq": lambda a, b: a == b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}
SEMVER_OPERATORS = {
    "semver_eq": lambda c: c == 0,
    "semver_lt": lambda c: c < 0,
    "semver_lte": lambda c: c <= 0,
    "semver_gt": lambda c: c > 0,
    "semver_gte": lambda c: c >= 0,
}
DATE_OPERATORS = {"before": lambda a, b: a < b, "after": lambda a, b: a > b}
SEGMENT_OPERATOR = "in_segment"
OPERATORS = frozenset(
    LIST_OPERATORS
    | TEXT_OPERATORS
    | NUMBER_OPERATORS.keys()
    | SEMVER_OPERATORS.keys()
    | DATE_OPERATORS.keys()
    | {SEGMENT_OPERATOR}
)
# Operators on the attribute's text, compiled by ``_text_check`` (the hot path).
TEXT_TESTS = frozenset(LIST_OPERATORS | {"equals", "not_equals"})


class ConditionError(ValueError):
    """A condition that cannot compile; ``field`` is its key that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def compile_condition(
    condition: Mapping[str, Any], segments: Mapping[str, Predicate]
) -> Predicate:
    """Turn one condition into a predicate on a context; raises ConditionError."""
    operator = condition.get("operator")
    if operator not in OPERATORS:
        raise ConditionError("operator", f"unknown operator {operator!r}")
    if operator == SEGMENT_OPERATOR:
        segment = segments.get(condition.get("value"))  # type: ignore[arg-type]
        if segment is None:
            raise ConditionError("value", f"unknown segment {condition.get('value')!r}")
        return _negated(segment, condition)
    attribute = condition.get("attribute")
    if not isinstance(attribute, str) or not attribute:
        raise ConditionError("attribute", "name the context attribute to test")
    if operator in TEXT_TESTS:
        return _negated(_text_check(operator, condition, attribute), condition)
    test = _compile_test(operator, condition)

    def check(ctx: Context) -> bool:
        value = ctx.get(attribute)
        return False if value is None else test(value)

    return _negated(check, condition)


def _text_check(
    operator: str, condition: Mapping[str, Any], attribute: str
) -> Predicate:
    """One closure per operator with the test written inline (a call per test
    would cost more than the test)."""
    fold = bool(condition.get("case_insensitive"))
    # not_equals and not_in hold for a missing attribute and negate the test.
    expect = operator not in ("not_equals", "not_in")
    missing = not expect

    if operator in ("equals", "not_equals"):
        expected = _text(_single(condition), fold)

        def equals(ctx: Context) -> bool:
            value = ctx.get(attribute)
            if value is None:
                return missing
            if fold or value.__class__ is not str:
                value = _text(value, fold)
            return (value == expected) is expect

        return equals
    values = _values(condition, fold)
    if operator in ("in", "not_in"):
        members = frozenset(values)

        def member(ctx: Context) -> bool:
            value = ctx.get(attribute)
            if value is None:
                return missing
            if fold or value.__class__ is not str:
                value = _text(value, fold)
            return (value in members) is expect

        return member
    if operator == "contains":

        def contains(ctx: Context) -> bool:
            value = ctx.get(attribute)
            if value is None:
                return False
            text = _text(value, fold)
            return any(v in text for v in values)

        return contains
    head = operator == "starts_with"

    def affix(ctx: Context) -> bool:
        value = ctx.get(attribute)
        if value is None:
            return False
        if fold or value.__class__ is not str:
            value = _text(value, fold)
        return value.startswith(values) if head else value.endswith(values)

    return affix


def _negated(predicate: Predicate, condition: Mapping[str, Any]) -> Predicate:
    if not condition.get("negate"):
        return predicate
    return lambda ctx: not predicate(ctx)


def _compile_test(operator: str, condition: Mapping[str, Any]) -> Callable[[Any], bool]:
    if operator in NUMBER_OPERATORS:
        return _number_test(NUMBER_OPERATORS[operator], condition.get("value"))
    if operator in SEMVER_OPERATORS:
        return _semver_test(SEMVER_OPERATORS[operator], condition.get("value"))
    if operator in DATE_OPERATORS:
        return _date_test(DATE_OPERATORS[operator], condition.get("value"))
    return _regex_test(condition.get("value"), bool(condition.get("case_insensitive")))


def _text(value: Any, fold: bool = False) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = value if isinstance(value, str) else str(value)
    return text.casefold() if fold else text


def _single(condition: Mapping[str, Any]) -> Any:
    value = condition.get("value")
    if value is None or isinstance(value, list | dict):
        raise ConditionError("value", "give one value")
    return value


def _values(condition: Mapping[str, Any], fold: bool) -> tuple[str, ...]:
    values = condition.get("values")
    if not isinstance(values, list) or not values:
        raise ConditionError("values", "give a non-empty list of values")
    if any(v is None or isinstance(v, list | dict) for v in values):
        raise ConditionError("values", "values must be strings or numbers")
    return tuple(_text(v, fold) for v in values)


def parse_number(value: Any) -> float | None:
    """A number from an int, float or numeric string; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return (
            float(value.strip()) if isinstance(value, str) and value.strip() else None
        )
    except ValueError:
        return None


def _number_test(
    compare: Callable[[float, float], bool], raw: Any
) -> Callable[[Any], bool]:
    expected = parse_number(raw)
    if expected is None:
        raise ConditionError("value", "give a number")

    def test(value: Any) -> bool:
        number = parse_number(value)
        return number is not None and compare(number, expected)

    return test


def parse_semver(value: Any) -> semver.Version | None:
    """A semantic version, or None when ``value`` is not one."""
    if not isinstance(value, str):
        return None
    try:
        return semver.Version.parse(value)
    except ValueError:
        return None


def _semver_test(accept: Callable[[int], bool], raw: Any) -> Callable[[Any], bool]:
    expected = parse_semver(raw)
    if expected is None:
        raise ConditionError("value", f"{raw!r} is not a semantic version (1.2.3)")

    def test(value: Any) -> bool:
        version = parse_semver(value)
        return version is not None and accept(version.compare(expected))

    return test


def parse_datetime(value: Any) -> datetime | None:
    """An aware datetime from a datetime or an ISO 8601 string (naive means UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _date_test(
    compare: Callable[[datetime, datetime], bool], raw: Any
) -> Callable[[Any], bool]:
    expected = parse_datetime(raw)
    if expected is None:
        raise ConditionError("value", "give an ISO 8601 date and time")

    def test(value: Any) -> bool:
        moment = parse_datetime(value)
        return moment is not None and compare(moment, expected)

    return test


def _regex_test(raw: Any, fold: bool) -> Callable[[Any], bool]:
    if not isinstance(raw, str) or not raw:
        raise ConditionError("value", "give a regular expression")
    if len(raw) > MAX_REGEX_LENGTH:
        raise ConditionError("value", f"longer than {MAX_REGEX_LENGTH} characters")
    try:
        pattern = re.compile(re2_subset(raw), re.ASCII | (re.IGNORECASE if fold else 0))
    except re.error as exc:
        raise ConditionError("value", f"invalid regular expression: {exc}") from exc
    return lambda value: pattern.search(_text(value)) is not None


# Regexes follow RE2, as Unleash's do: no backreferences or lookarounds (they can
# backtrack without bound), POSIX classes allowed, ASCII classes (re.ASCII above).
_NOT_RE2 = re.compile(r"\\[1-9]|\(\?P=|\(\?<?[=!]")
_POSIX_CLASSES = {
    "[:alpha:]": "a-zA-Z",
    "[:digit:]": "0-9",
    "[:alnum:]": "a-zA-Z0-9",
    "[:upper:]": "A-Z",
    "[:lower:]": "a-z",
    "[:space:]": r"\s",
    "[:word:]": r"\w",
    "[:xdigit:]": "0-9A-Fa-f",
}
_INLINE_FLAGS = re.compile(r"\(\?([ims]+)\)")


def re2_subset(raw: str) -> str:
    """Python's spelling of an RE2 pattern; ConditionError when RE2 would refuse it."""
    if _NOT_RE2.search(raw):
        raise ConditionError("value", "backreferences and lookarounds are not allowed")
    for posix, ours in _POSIX_CLASSES.items():
        raw = raw.replace(posix, ours)
    # RE2 allows a flag group mid-pattern; Python only at the start, so hoist it.
    flags = "".join(sorted(set("".join(_INLINE_FLAGS.findall(raw)))))
    return f"(?{flags}){_INLINE_FLAGS.sub('', raw)}" if flags else raw
