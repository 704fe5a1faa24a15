"""ninja In/Out shapes of the breakers API."""

from datetime import datetime
from typing import Any

from ninja import Field, Schema

from apps.breakers.models import BreakerEvent
from apps.breakers.selectors import BreakerStatus


class BreakerOut(Schema):
    name: str
    state: str
    calls: int
    failures: int
    slow: int
    failure_rate: float | None
    slow_rate: float | None
    # "fleet" (Redis) or "local" (this server's own view: Redis unreachable).
    source: str
    degraded: str
    last_transition_at: datetime | None
    config: dict[str, Any]

    @classmethod
    def build(cls, status: BreakerStatus) -> "BreakerOut":
        view = status.view
        return cls(
            name=view.name,
            state=view.state,
            calls=view.calls,
            failures=view.failures,
            slow=view.slow,
            failure_rate=view.failure_rate,
            slow_rate=view.slow_rate,
            source=view.source,
            degraded=view.degraded,
            last_transition_at=status.last_transition_at,
            config=status.breaker.config().as_dict(),
        )


class BreakerEventOut(Schema):
    from_state: str
    to_state: str
    reason: str
    origin: str
    actor: str | None
    at: datetime

    @classmethod
    def build(cls, event: BreakerEvent) -> "BreakerEventOut":
        return cls(
            from_state=event.from_state,
            to_state=event.to_state,
            reason=event.reason,
            origin=event.origin,
            actor=event.actor.get_username() if event.actor else None,
            at=event.at,
        )


class BreakerDetailOut(BreakerOut):
    events: list[BreakerEventOut]


class BreakerActionIn(Schema):
    reason: str = Field(..., min_length=1, max_length=2000)
