"""The psycopg connection under a Django connection, for COPY and DDL."""

from collections.abc import Callable
from typing import Any, cast

import psycopg
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

# Gives this thread's Django connection; the default one unless a caller says.
Database = Callable[[], BaseDatabaseWrapper]


def default_database() -> BaseDatabaseWrapper:
    return connections["default"]


def raw_connection(
    database: BaseDatabaseWrapper | None = None,
) -> psycopg.Connection[Any]:
    """The psycopg connection under ``database`` (default: this thread's default
    connection), opened if needed. Its ``transaction()`` works under any alias."""
    database = database or default_database()
    database.ensure_connection()
    return cast(psycopg.Connection[Any], database.connection)
