"""TCP: a connection opens within the timeout."""

import asyncio

from pydantic import Field

from apps.components.checkers.base import (
    HEALTHY,
    CheckConfig,
    CheckerKind,
    CheckOutcome,
    Stopwatch,
)


class Config(CheckConfig):
    host: str
    port: int = Field(ge=1, le=65535)


async def check(config: Config, timeout: float) -> CheckOutcome:
    watch = Stopwatch()
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(config.host, config.port), timeout
    )
    latency = watch.ms()
    writer.close()
    await writer.wait_closed()
    return CheckOutcome(HEALTHY, latency, f"connected to {config.host}:{config.port}")


KIND = CheckerKind("tcp", Config, check)
