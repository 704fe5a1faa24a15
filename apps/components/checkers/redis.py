"""Redis: PING, then an optional key expectation."""

import redis.asyncio as aioredis
from pydantic import model_validator

from apps.components.checkers.base import (
    HEALTHY,
    UNHEALTHY,
    CheckConfig,
    CheckerKind,
    CheckOutcome,
    Stopwatch,
    secret,
)


class Config(CheckConfig):
    url: str | None = secret(default=None)
    use_console_redis: bool = False
    key: str | None = None
    # With ``key``: the value it must hold; without, the key must merely exist.
    expect_value: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> "Config":
        if (self.url is None) == (not self.use_console_redis):
            raise ValueError("give either url or use_console_redis: true")
        return self


async def check(config: Config, timeout: float) -> CheckOutcome:
    from django.conf import settings

    url = settings.REDIS_URL if config.use_console_redis else config.url
    client = aioredis.Redis.from_url(
        url or "", socket_connect_timeout=timeout, socket_timeout=timeout
    )
    watch = Stopwatch()
    async with client:
        await client.ping()
        value = await client.get(config.key) if config.key else None
    latency = watch.ms()
    if config.key is not None:
        problem = _key_problem(config, value)
        if problem:
            return CheckOutcome(UNHEALTHY, latency, problem)
    return CheckOutcome(HEALTHY, latency, "PONG")


def _key_problem(config: Config, value: bytes | str | None) -> str:
    if value is None:
        return f"key {config.key!r} is missing"
    text = value.decode() if isinstance(value, bytes) else value
    if config.expect_value is not None and text != config.expect_value:
        return f"key {config.key!r} does not hold the expected value"
    return ""


KIND = CheckerKind("redis", Config, check)
