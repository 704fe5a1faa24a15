"""Day partitions of ``metrics_sample``: named ``metrics_sample_pYYYYMMDD``, each
holding [day 00:00 UTC, next day 00:00 UTC). Created ahead by a task and on demand
by the writer; dropped whole by retention, never emptied with DELETE."""

from collections.abc import Iterable
from datetime import date, datetime, timedelta

import psycopg
from django.db import OperationalError, connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from apps.metrics.db import raw_connection
from apps.metrics.dbmonitor import noted

PARENT = "metrics_sample"
PREFIX = f"{PARENT}_p"
# Serialises partition DDL across processes (two CREATE ... IF NOT EXISTS racing
# can still collide on the catalog).
_LOCK_KEY = 0x6D657472  # "metr"
LOCK_SQL = "SELECT pg_advisory_xact_lock(%s)"
# Summarizes the BRIN ranges of the partition named by the parameter that are
# not summarized yet, the last partial one included; the number summarized.
BRIN_SUMMARIZE_SQL = (
    "SELECT brin_summarize_new_values(x.indexrelid) FROM pg_index x "
    "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am a ON a.oid = i.relam "
    "WHERE x.indrelid = %s::regclass AND a.amname = 'brin'"
)


def partition_name(day: date) -> str:
    return f"{PREFIX}{day:%Y%m%d}"


def partition_day(name: str) -> date | None:
    """The day a partition named by ``partition_name`` holds, else None."""
    if not name.startswith(PREFIX):
        return None
    try:
        return datetime.strptime(name.removeprefix(PREFIX), "%Y%m%d").date()  # noqa: DTZ007 - a date only
    except ValueError:
        return None


def partitions_create(
    *, days: Iterable[date], database: BaseDatabaseWrapper | None = None
) -> None:
    """Create the partitions of ``days`` that do not exist yet."""
    raw = raw_connection(database)
    with raw.transaction(), raw.cursor() as cursor:
        with noted(LOCK_SQL):
            cursor.execute(LOCK_SQL, [_LOCK_KEY])
        for day in sorted(set(days)):
            create = (
                f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF {PARENT} "
                "FOR VALUES FROM (%s) TO (%s)"
            )
            with noted(create):
                cursor.execute(
                    create, [_midnight(day), _midnight(day + timedelta(days=1))]
                )


def partitions_list() -> list[str]:
    """Names of the existing partitions, from pg_catalog, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            [PARENT],
        )
        return [name for (name,) in cursor.fetchall()]


def partitions_ready_for_reads(*, days: Iterable[date]) -> None:
    """Ready the partitions of ``days`` for a backlog of time-range reads, in the
    caller's transaction.

    A partition filled faster than autovacuum follows (a first day, a replayed
    spill) has no statistics, so the planner scans it whole for every read, and
    BRIN ranges autosummarize has not reached yet, so a bitmap scan reads them
    all (a 5-minute read of 3M fresh rows: 137 ms, 296 ms analyzed only, 14 ms
    both). Analyzed when never analyzed, and its new BRIN ranges summarized,
    the last partial one too: rows then added to that range extend its summary,
    so this is for catching up, not for every run. Both take the partition's
    SHARE UPDATE EXCLUSIVE lock, held to the caller's commit; a partition whose
    lock another holds (autovacuum, another run) is left as it is."""
    existing = set(partitions_list())
    for name in sorted({partition_name(day) for day in days} & existing):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"LOCK TABLE {name} IN SHARE UPDATE EXCLUSIVE MODE NOWAIT"
                )
                cursor.execute(
                    "SELECT reltuples < 0 FROM pg_class WHERE oid = %s::regclass",
                    [name],
                )
                if cursor.fetchone()[0]:
                    cursor.execute(f"ANALYZE {name}")
                cursor.execute(BRIN_SUMMARIZE_SQL, [name])
        except OperationalError as exc:
            if not isinstance(exc.__cause__, psycopg.errors.LockNotAvailable):
                raise


def partitions_drop_before(*, day: date) -> list[str]:
    """Drop every partition holding only days before ``day``; their names."""
    doomed = [
        name
        for name in partitions_list()
        if (held := partition_day(name)) is not None and held < day
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(LOCK_SQL, [_LOCK_KEY])
        for name in doomed:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
    return doomed


def _midnight(day: date) -> str:
    return f"{day.isoformat()} 00:00:00+00"
