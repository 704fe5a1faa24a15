"""The DB query monitor: fingerprints, recent/slow lists, per-fingerprint stats, CLI."""

import uuid

import pytest
from django.db import connection

from apps.metrics.dbmonitor import MONITOR, fingerprint
from apps.metrics.heartbeat import heartbeat_start
from apps.metrics.selectors import db_queries, db_stats
from tests.metrics.test_cli import FORMATS, parsed, run_command

pytestmark = pytest.mark.django_db


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
