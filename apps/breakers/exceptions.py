from typing import Any

from apps.core.exceptions import DependencyUnavailable


class BreakerOpenError(DependencyUnavailable):
    """The breaker refused the call; ``retry_after`` is in seconds.

    Refusing is a hot path while a dependency is down, so the message and the
    API's ``extra`` are built only when something reads them.
    """

    default_code = "breaker_open"
    code = default_code

    def __init__(self, name: str, state: str, retry_after: float) -> None:
        Exception.__init__(self, name, state, retry_after)
        self.name = name
        self.state = state
        self.retry_after = max(0.0, round(retry_after, 3))

    @property
    def message(self) -> str:  # type: ignore[override]
        return (
            f"Breaker {self.name} is {self.state}; retry after {self.retry_after:.1f}s."
        )

    @property
    def extra(self) -> dict[str, Any]:  # type: ignore[override]
        return {
            "breaker": self.name,
            "state": self.state,
            "retry_after": self.retry_after,
        }

    def __str__(self) -> str:
        return self.message
