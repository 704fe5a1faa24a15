"""Redis remediation: disconnect clients idle for too long (CLIENT KILL ID)."""

import redis.asyncio as aioredis
from django.conf import settings
from pydantic import Field, model_validator

from apps.components.checkers.base import secret
from apps.healing.actions.base import (
    ActionConfig,
    ActionKind,
    ActionResult,
    HealContext,
)


class Config(ActionConfig):
    url: str | None = secret(default=None)
    use_console_redis: bool = False
    idle_seconds: int = Field(default=600, ge=1)

    @model_validator(mode="after")
    def _one_target(self) -> "Config":
        if (self.url is None) == (not self.use_console_redis):
            raise ValueError("give either url or use_console_redis: true")
        return self


async def run(config: Config, ctx: HealContext) -> ActionResult:
    url = settings.REDIS_URL if config.use_console_redis else config.url
    client = aioredis.Redis.from_url(
        url or "", socket_connect_timeout=ctx.timeout, socket_timeout=ctx.timeout
    )
    async with client:
        me = await client.client_id()
        idle = [
            int(entry["id"])
            for entry in await client.client_list(_type="normal")
            if int(entry["idle"]) >= config.idle_seconds and int(entry["id"]) != me
        ]
        for client_id in idle:
            await client.execute_command("CLIENT", "KILL", "ID", client_id)
    return ActionResult(True, f"disconnected {len(idle)} idle client(s)")


def describe(config: Config) -> str:
    return f"disconnect clients idle over {config.idle_seconds} s"


KIND = ActionKind("redis", Config, run, describe)
