"""Breaker states and the validated configuration of one breaker (resilience4j's)."""

import json
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from django.utils.module_loading import import_string

from apps.core.exceptions import ValidationFailed


class State(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    FORCED_OPEN = "FORCED_OPEN"
    DISABLED = "DISABLED"


class WindowType(StrEnum):
    COUNT = "count"
    TIME = "time"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Defaults are resilience4j's; durations in milliseconds, rates in percent."""

    window_type: str = WindowType.COUNT.value
    # Calls (count window) or seconds (time window).
    window_size: int = 100
    minimum_calls: int = 100
    failure_rate_threshold: float = 50.0
    slow_call_duration_ms: int = 60_000
    slow_call_rate_threshold: float = 100.0
    wait_duration_ms: int = 60_000
    # 1 keeps the wait constant; above 1 each consecutive opening waits longer.
    wait_multiplier: float = 1.0
    max_wait_duration_ms: int = 60_000
    permitted_calls_half_open: int = 10
    # resilience4j's maxWaitDurationInHalfOpenState, with 0 meaning the same (wait
    # for the permitted calls however long). Not its default of 0: in a fleet a
    # process that dies holding a permit (deploy, OOM kill) would keep every
    # process refused until an operator resets the breaker. 60 s is the default
    # slow-call duration: a permitted call still running then is long overdue.
    max_wait_in_half_open_ms: int = 60_000
    record_exceptions: tuple[str, ...] = field(default_factory=tuple)
    ignore_exceptions: tuple[str, ...] = field(default_factory=tuple)

    @property
    def min_calls(self) -> int:
        """Calls needed before rates count; a smaller count window caps it."""
        if self.window_type == WindowType.COUNT:
            return min(self.minimum_calls, self.window_size)
        return self.minimum_calls

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["record_exceptions"] = list(self.record_exceptions)
        data["ignore_exceptions"] = list(self.ignore_exceptions)
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> "BreakerConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("record_exceptions", "ignore_exceptions"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    @classmethod
    def from_json(cls, raw: str | bytes) -> "BreakerConfig":
        return cls.from_mapping(json.loads(raw))


def config_validate(config: BreakerConfig) -> None:
    """Raise ValidationFailed (field paths) unless ``config`` is usable."""
    errors: dict[str, list[str]] = {}
    if config.window_type not in WindowType.__members__.values():
        errors["window_type"] = ["Use 'count' or 'time'."]
    half_open = config.max_wait_in_half_open_ms
    if not isinstance(half_open, int) or isinstance(half_open, bool) or half_open < 0:
        errors["max_wait_in_half_open_ms"] = [
            "Must be a whole number of at least 0 (0: wait for the permitted calls)."
        ]
    for name in (
        "window_size",
        "minimum_calls",
        "slow_call_duration_ms",
        "wait_duration_ms",
        "max_wait_duration_ms",
        "permitted_calls_half_open",
    ):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors[name] = ["Must be a whole number of at least 1."]
    for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
        value = getattr(config, name)
        if not isinstance(value, int | float) or not 0 < value <= 100:
            errors[name] = ["Must be a percentage above 0 and at most 100."]
    if not isinstance(config.wait_multiplier, int | float) or not (
        1 <= config.wait_multiplier <= 100
    ):
        errors["wait_multiplier"] = ["Must be between 1 and 100."]
    elif (
        "max_wait_duration_ms" not in errors
        and "wait_duration_ms" not in errors
        and config.max_wait_duration_ms < config.wait_duration_ms
    ):
        errors["max_wait_duration_ms"] = ["Must be at least wait_duration_ms."]
    for name in ("record_exceptions", "ignore_exceptions"):
        for index, dotted in enumerate(getattr(config, name)):
            problem = _exception_problem(dotted)
            if problem:
                errors[f"{name}.{index}"] = [problem]
    if errors:
        raise ValidationFailed(errors)


def _exception_problem(dotted: object) -> str:
    if not isinstance(dotted, str) or "." not in dotted:
        return "Use a dotted class name such as 'builtins.TimeoutError'."
    try:
        cls = import_string(dotted)
    except ImportError:
        return f"Cannot import {dotted}."
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return f"{dotted} is not an exception class."
    return ""


def exception_classes(names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    """The classes of validated dotted names."""
    return tuple(import_string(name) for name in names)
