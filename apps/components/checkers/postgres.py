"""PostgreSQL: connect, ``SELECT 1``, then an optional query."""

from typing import Any

import psycopg
from pydantic import model_validator

from apps.components.checkers.base import (
    HEALTHY,
    CheckConfig,
    CheckerKind,
    CheckOutcome,
    Stopwatch,
    secret,
)


class Config(CheckConfig):
    dsn: str | None = secret(default=None)
    # Check the console's own database without copying its DSN into a row.
    use_console_database: bool = False
    query: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> "Config":
        if (self.dsn is None) == (not self.use_console_database):
            raise ValueError("give either dsn or use_console_database: true")
        return self


def _console_conninfo() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    params: dict[str, Any] = {
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "dbname": db.get("NAME"),
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
    }
    return psycopg.conninfo.make_conninfo(
        **{key: value for key, value in params.items() if value is not None}
    )


async def check(config: Config, timeout: float) -> CheckOutcome:
    conninfo = _console_conninfo() if config.use_console_database else config.dsn
    watch = Stopwatch()
    connection = await psycopg.AsyncConnection.connect(
        conninfo or "", connect_timeout=max(1, int(timeout)), autocommit=True
    )
    async with connection:
        await connection.execute("SELECT 1")
        details: dict[str, Any] = {}
        if config.query:
            cursor = await connection.execute(config.query.encode())
            row = await cursor.fetchone() if cursor.description else None
            details["first_value"] = str(row[0]) if row else None
    return CheckOutcome(HEALTHY, watch.ms(), "SELECT 1 ok", details)


KIND = CheckerKind("postgres", Config, check)
