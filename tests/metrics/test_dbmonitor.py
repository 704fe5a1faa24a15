"""The DB query monitor: fingerprints, recent/slow lists, per-fingerprint stats, CLI."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection

from apps.metrics import minutes, seriesmerge
from apps.metrics.db import default_database
from apps.metrics.dbmonitor import MONITOR, fingerprint
from apps.metrics.heartbeat import heartbeat_start
from apps.metrics.models import Resolution
from apps.metrics.partitions import _LOCK_KEY, partitions_create
from apps.metrics.rollups import rollup_due
from apps.metrics.selectors import db_queries, db_stats, metrics_query
from apps.metrics.storage import COPY_SQL, PENDING_SQL, SampleWriter
from tests.metrics.conftest import sample
from tests.metrics.test_cli import FORMATS, parsed, run_command
from tests.procs import database_url_for_tests, wait_until

pytestmark = pytest.mark.django_db
MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _own_keys(settings):
    # Redis keys of this test's own (what was noted before goes to the old ones);
    # queries at least 20 ms are slow.
    flushed()
    # Under the session's prefix, so its clean-up at the end takes these too.
    settings.OPSCONSOLE_REDIS_PREFIX += f"{uuid.uuid4().hex[:8]}:"
    settings.OPSCONSOLE_DB_SLOW_QUERY_MS = 20


def flushed() -> None:
    heartbeat_start(role="web").publish()


def recent_count(sql: str) -> int:
    recent = [note.fingerprint for note in db_queries(which="recent", limit=500)]
    return recent.count(fingerprint(sql)[0])


def stats_count(sql: str) -> int:
    stats = {row.fingerprint: row.count for row in db_stats(limit=500)}
    return stats.get(fingerprint(sql)[0], 0)


def minute_samples(name: str, minute: datetime) -> list:
    return [
        sample(name, n, at=minute + timedelta(seconds=n), env="prod", host=host)
        for n in range(10)
        for host in ("a", "b")
    ]


def test_fingerprint__literals_params_and_lists__normalised():
    sql = (
        "SELECT * FROM t1 /* hint */ WHERE a = 'it''s' AND b IN (1, 2, 3) "
        "AND c = %s AND d > -4.5e3\n  LIMIT 21"
    )
    text, ident = fingerprint(sql)
    assert (
        text
        == "SELECT * FROM t1 WHERE a = ? AND b IN (...) AND c = ? AND d > ? LIMIT ?"
    )
    assert fingerprint(sql.replace("21", "99"))[1] == ident


def test_monitor__queries_on_this_connection__recent_slow_and_stats():
    assert MONITOR in connection.execute_wrappers
    with connection.cursor() as cursor:
        for n in range(3):
            cursor.execute("SELECT %s::int + 1", [n])
        cursor.execute("SELECT pg_sleep(0.03)")
    flushed()
    recent = [note.fingerprint for note in db_queries(which="recent", limit=500)]
    assert recent.count("SELECT ?::int + ?") == 3
    slow = db_queries(which="slow")
    assert [note.fingerprint for note in slow] == ["SELECT pg_sleep(?)"]
    assert slow[0].ms >= 30
    stats = {row.fingerprint: row for row in db_stats(limit=500)}
    assert stats["SELECT ?::int + ?"].count == 3
    assert stats["SELECT pg_sleep(?)"].p95_ms == pytest.approx(slow[0].ms, rel=0.02)


@pytest.mark.parametrize("action", ["recent", "slow", "stats"])
def test_cli__three_formats__parse_back_to_the_same_rows(action):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.025), 'x y'")
    flushed()
    outputs = [parsed(run_command("db", action, "--format", f), f) for f in FORMATS]
    # Other threads' queries may be flushed meanwhile: compare this test's own.
    rows = [[r for r in out if "pg_sleep(?), ?" in r["fingerprint"]] for out in outputs]
    assert rows[0] == rows[1] == rows[2]
    assert len(rows[0]) == 1


def test_persister_flush__two_batches__copy_noted_once_per_flush():
    writer = SampleWriter(database=default_database)
    now = datetime.now(UTC)
    writer.write([sample("t.dbmon.copy", 1.0, at=now)])
    writer.write([sample("t.dbmon.copy", n, at=now, host="a") for n in range(500)])
    flushed()
    # Per statement, not per row: one COPY and one pending mark per flush.
    assert recent_count(COPY_SQL) == stats_count(COPY_SQL) == 2
    assert stats_count(PENDING_SQL) == 2
    copies = [n for n in db_queries(which="recent", limit=500) if n.sql == COPY_SQL]
    assert all(note.ms > 0 for note in copies)


def test_minute_rollup__pipelined_reads_and_upserts__each_noted():
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    SampleWriter(database=default_database).write(
        minute_samples("t.dbmon.roll", minute)
    )

    rollup_due(resolution=Resolution.MINUTE, now=minute + MINUTE, grace=timedelta(0))
    flushed()

    for sql in (minutes.READ_SQL, minutes.SERIES_UPSERT, minutes.NAME_UPSERT):
        assert recent_count(sql) >= 1
    # Every read that found samples was written by both upserts.
    assert stats_count(minutes.SERIES_UPSERT) == stats_count(minutes.NAME_UPSERT)
    assert stats_count(minutes.READ_SQL) >= stats_count(minutes.SERIES_UPSERT) >= 1


def test_series_merge__tag_filter_not_rolled_up__its_read_noted(settings):
    settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS = []  # env=prod: a series merge
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    SampleWriter(database=default_database).write(
        minute_samples("t.dbmon.merge", minute)
    )
    rollup_due(resolution=Resolution.MINUTE, now=minute + MINUTE, grace=timedelta(0))
    flushed()

    _, buckets = metrics_query(
        name="t.dbmon.merge",
        tags={"env": "prod"},
        start=minute,
        end=minute + timedelta(hours=1),
        step=60,
    )
    flushed()

    assert [b.count for b in buckets] == [20]
    assert recent_count(seriesmerge.READ_SQL) == stats_count(seriesmerge.READ_SQL) == 1


def test_raw_statement__waits_past_the_threshold__in_slow():
    # Another session holds the partition DDL lock until partitions_create waits
    # on it, then 30 ms more (the threshold is 20 ms).
    held = threading.Event()

    def hold() -> None:
        with psycopg.connect(database_url_for_tests(), autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", [_LOCK_KEY])
            held.set()
            wait_until(lambda: waiting(other), timeout=10, what="partitions_create")
            other.execute("SELECT pg_sleep(0.03), pg_advisory_unlock(%s)", [_LOCK_KEY])

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(timeout=10)
    partitions_create(days=[datetime.now(UTC).date()])
    holder.join(timeout=10)
    flushed()

    lock = "SELECT pg_advisory_xact_lock(?)"
    slow = [n for n in db_queries(which="slow") if n.fingerprint == lock]
    assert len(slow) == 1
    assert slow[0].ms >= 30


def waiting(other: psycopg.Connection) -> bool:
    row = other.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND objid = %s",
        [_LOCK_KEY],
    ).fetchone()
    return bool(row and row[0])
