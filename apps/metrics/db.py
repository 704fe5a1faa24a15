"""The psycopg connection under a Django connection, for COPY and DDL."""

import copy
import os
import threading
from collections.abc import Callable
from typing import Any, cast

import psycopg
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import ConnectionHandler

# Gives this thread's Django connection; the default one unless a caller says.
Database = Callable[[], BaseDatabaseWrapper]
DIRECT_CONNECT_TIMEOUT = 2
_direct = threading.local()


def default_database() -> BaseDatabaseWrapper:
    return connections["default"]


def direct_database() -> BaseDatabaseWrapper:
    """This thread's own connection to the default database, outside the pool.

    The persister's: while PostgreSQL is away a pooled connection makes each
    attempt wait the pool's whole timeout; a direct one is refused at once (or
    after ``DIRECT_CONNECT_TIMEOUT`` seconds when the host does not answer).
    """
    wrapper = getattr(_direct, "wrapper", None)
    if wrapper is None:
        params = copy.deepcopy(connections["default"].settings_dict)
        params["OPTIONS"].pop("pool", None)
        params["OPTIONS"]["connect_timeout"] = DIRECT_CONNECT_TIMEOUT
        # Alias "default": django.contrib.postgres looks type oids up by alias.
        wrapper = ConnectionHandler({"default": params}).create_connection("default")
        _direct.wrapper = wrapper
    return cast(BaseDatabaseWrapper, wrapper)


def raw_connection(
    database: BaseDatabaseWrapper | None = None,
) -> psycopg.Connection[Any]:
    """The psycopg connection under ``database`` (default: this thread's default
    connection), opened if needed. Its ``transaction()`` works under any alias."""
    database = database or default_database()
    database.ensure_connection()
    return cast(psycopg.Connection[Any], database.connection)


def _forget_direct() -> None:
    # A forked child must not share its parent's socket.
    global _direct
    _direct = threading.local()


os.register_at_fork(after_in_child=_forget_direct)
