"""What every checker shares: the outcome type, the config base and the kind record."""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

HEALTHY = "healthy"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"
SECRET_MARK = "secret"  # noqa: S105 - a schema marker, not a password
# How a stored secret is shown (and comes back from a form or a PATCH unchanged).
MASK = "********"


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """The result of one check, before it is recorded."""

    status: str
    latency_ms: float
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class CheckConfig(BaseModel):
    """A kind's config schema: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def secret(**kwargs: Any) -> Any:
    """A config field that is stored but never shown (see component_config_public)."""
    return Field(json_schema_extra={SECRET_MARK: True}, **kwargs)


def secret_fields(model: type[BaseModel]) -> frozenset[str]:
    """The names of ``model``'s fields declared with ``secret()``."""
    return frozenset(
        name
        for name, info in model.model_fields.items()
        if isinstance(info.json_schema_extra, dict)
        and info.json_schema_extra.get(SECRET_MARK)
    )


CheckFunction = Callable[[Any, float], Awaitable[CheckOutcome]]


@dataclass(frozen=True, slots=True)
class CheckerKind:
    name: str
    config_model: type[CheckConfig]
    check: CheckFunction


class Stopwatch:
    """Milliseconds since creation, for an outcome's latency."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def ms(self) -> float:
        return round((time.perf_counter() - self._start) * 1000, 3)
