"""Circuit breakers. In-process API: ``guard(name)``, ``BreakerOpenError``, ``health()``.

The closed path reads this process's state only: no database, no Redis.
"""

from apps.breakers.agent import AgentHealth, default_agent
from apps.breakers.exceptions import BreakerOpenError
from apps.breakers.guard import Fallback, Guard

__all__ = ["AgentHealth", "BreakerOpenError", "Guard", "guard", "health"]


def guard(name: str, *, fallback: Fallback | None = None) -> Guard:
    """Protect a call with breaker ``name``: ``with``/``async with`` or a decorator."""
    return Guard(default_agent().breaker(name), fallback)


def health() -> AgentHealth:
    """Whether this process's breakers reach Redis or protect on local state only."""
    return default_agent().health()
