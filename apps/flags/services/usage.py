"""How often each flag was evaluated: per-process counts added up in FlagUsage."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

from apps.flags.models import FlagUsage

_TABLE = FlagUsage._meta.db_table
# One statement for the whole batch: safe to run from many processes at once.
_ADD = f"""
    INSERT INTO {_TABLE} (key, evaluations, last_evaluated_at)
    SELECT * FROM unnest(%s::varchar[], %s::bigint[], %s::timestamptz[])
    ON CONFLICT (key) DO UPDATE SET
        evaluations = {_TABLE}.evaluations + EXCLUDED.evaluations,
        last_evaluated_at = GREATEST(
            {_TABLE}.last_evaluated_at, EXCLUDED.last_evaluated_at
        )
"""  # noqa: S608 - the table name is ours, the values are parameters


@dataclass(frozen=True, slots=True)
class UsageDelta:
    key: str
    evaluations: int
    last_evaluated_at: datetime


def flag_usage_add(
    *, deltas: Sequence[UsageDelta], database: BaseDatabaseWrapper | None = None
) -> None:
    """Add ``deltas`` to the flags' usage rows (created on first use)."""
    if not deltas:
        return
    params: list[Any] = [
        [delta.key for delta in deltas],
        [delta.evaluations for delta in deltas],
        [delta.last_evaluated_at for delta in deltas],
    ]
    with (database or connection).cursor() as cursor:
        cursor.execute(_ADD, params)
