"""PostgreSQL remediation: terminate backends idle in a transaction for too long."""

import psycopg
from pydantic import Field, model_validator

from apps.components.checkers.base import secret
from apps.components.checkers.postgres import _console_conninfo
from apps.healing.actions.base import (
    ActionConfig,
    ActionKind,
    ActionResult,
    HealContext,
)

TERMINATE = """
SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
WHERE state = 'idle in transaction' AND datname = current_database()
  AND pid <> pg_backend_pid()
  AND state_change < now() - make_interval(secs => %s)
"""


class Config(ActionConfig):
    dsn: str | None = secret(default=None)
    use_console_database: bool = False
    idle_seconds: int = Field(default=300, ge=1)

    @model_validator(mode="after")
    def _one_target(self) -> "Config":
        if (self.dsn is None) == (not self.use_console_database):
            raise ValueError("give either dsn or use_console_database: true")
        return self


async def run(config: Config, ctx: HealContext) -> ActionResult:
    conninfo = _console_conninfo() if config.use_console_database else config.dsn
    connection = await psycopg.AsyncConnection.connect(
        conninfo or "", connect_timeout=max(1, int(ctx.timeout)), autocommit=True
    )
    async with connection:
        cursor = await connection.execute(TERMINATE, [config.idle_seconds])
        pids = [pid for pid, done in await cursor.fetchall() if done]
    return ActionResult(True, f"terminated {len(pids)} backend(s): {pids}")


def describe(config: Config) -> str:
    return f"terminate backends idle in transaction over {config.idle_seconds} s"


KIND = ActionKind("postgres", Config, run, describe)
