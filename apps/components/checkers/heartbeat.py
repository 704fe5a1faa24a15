"""Heartbeat (push) components: the schedule pings are expected on, and its grace.

Nothing is polled: the component pings ``/ping/<uuid>`` and the scheduler notices
pings that stop (``apps.components.heartbeats``). Like Healthchecks.io, a schedule is
a period or a cron expression in a time zone, plus a grace time.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Field, field_validator, model_validator

from apps.components.checkers.base import (
    UNHEALTHY,
    CheckConfig,
    CheckerKind,
    CheckOutcome,
)


class Config(CheckConfig):
    period_seconds: int | None = Field(default=None, ge=1)
    cron: str | None = None
    timezone: str = "UTC"
    # Healthchecks' default grace: one hour.
    grace_seconds: int = Field(default=3600, ge=1)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError("not a valid cron expression")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone") from exc
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> "Config":
        if (self.period_seconds is None) == (self.cron is None):
            raise ValueError("give either period_seconds or cron")
        return self

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.grace_seconds)


def next_expected(config: Config, *, after: datetime) -> datetime:
    """When the next ping is due, given one at ``after``."""
    if config.period_seconds is not None:
        return after + timedelta(seconds=config.period_seconds)
    local = after.astimezone(ZoneInfo(config.timezone))
    return croniter(str(config.cron), local).get_next(datetime)


async def check(config: Config, timeout: float) -> CheckOutcome:
    # Never dispatched (see services._claim_batch); kept so KINDS stays uniform.
    return CheckOutcome(UNHEALTHY, 0.0, "heartbeat components are pushed, not polled")


KIND = CheckerKind("heartbeat", Config, check)
