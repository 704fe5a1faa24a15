from apps.core.exceptions import DependencyUnavailable


class BreakerOpenError(DependencyUnavailable):
    """The breaker refused the call; ``retry_after`` is in seconds."""

    default_code = "breaker_open"

    def __init__(self, name: str, state: str, retry_after: float) -> None:
        retry_after = max(0.0, round(retry_after, 3))
        super().__init__(
            f"Breaker {name} is {state}; retry after {retry_after:.1f}s.",
            extra={"breaker": name, "state": state, "retry_after": retry_after},
        )
        self.name = name
        self.state = state
        self.retry_after = retry_after
