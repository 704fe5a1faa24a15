"""The remediation actions against real servers: PostgreSQL backends, Redis clients,
Celery queues and worker pools."""

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from apps.core.services import SELFTEST_TASK
from apps.healing.actions import HealContext, action_run
from opsconsole.celery import app
from opsconsole.embedded import EmbeddedValkey, free_port
from tests.procs import (
    celery_worker,
    database_url_for_tests,
    running_workers_paused,
    wait_until,
)

# Each test's own database (or server) keeps the actions off everyone else's.
pytestmark = pytest.mark.django_db
CTX = HealContext(slug="db", attempt=1, reason="down", trace_id="cd" * 16, timeout=5)


@pytest.fixture
def scratch_database() -> Iterator[str]:
    """A database of its own: the action ends backends in the whole database."""
    base = database_url_for_tests()
    name = f"heal_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"{base.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            [name],
        )
        admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))


def _idle_in_transaction_for(url: str, pid: int, seconds: float) -> bool:
    with psycopg.connect(url, autocommit=True) as watch:
        row = watch.execute(
            "SELECT state = 'idle in transaction'"
            " AND state_change < now() - make_interval(secs => %s)"
            " FROM pg_stat_activity WHERE pid = %s",
            [seconds, pid],
        ).fetchone()
    return bool(row and row[0])


def test_postgres__idle_in_transaction_past_the_limit__only_that_backend_ended(
    scratch_database: str,
):
    stuck = psycopg.connect(scratch_database)
    stuck.execute("SELECT 1")  # opens a transaction and leaves it open
    idle = psycopg.connect(scratch_database, autocommit=True)
    idle.execute("SELECT 1")  # idle, but not in a transaction
    try:
        pid = stuck.info.backend_pid
        wait_until(
            lambda: _idle_in_transaction_for(scratch_database, pid, 1),
            timeout=10,
            what="the transaction to idle past a second",
        )
        config = {"dsn": scratch_database, "idle_seconds": 3600}
        younger = action_run("postgres", config, CTX)
        config["idle_seconds"] = 1
        older = action_run("postgres", config, CTX)

        assert younger.ok
        assert younger.output == "terminated 0 backend(s): []"
        assert older.ok
        assert older.output == f"terminated 1 backend(s): [{pid}]"
        with pytest.raises(psycopg.OperationalError):
            stuck.execute("SELECT 1")
        assert idle.execute("SELECT 1").fetchone() == (1,)
    finally:
        stuck.close()
        idle.close()


def _client_names(client: redis.Redis) -> list[str]:
    return [entry["name"] for entry in client.client_list(_type="normal")]


def _idle_seconds(client: redis.Redis, name: str) -> int:
    idle = [e["idle"] for e in client.client_list() if e["name"] == name]
    return int(idle[0]) if idle else -1


def test_redis__client_idle_past_the_limit__disconnected_others_kept(tmp_path: Path):
    valkey = EmbeddedValkey(tmp_path / "valkey", free_port())
    valkey.start()
    try:
        victim = redis.Redis.from_url(valkey.url, decode_responses=True)
        victim.client_setname("victim")
        watch = redis.Redis.from_url(valkey.url, decode_responses=True)
        watch.client_setname("watch")
        wait_until(
            lambda: _idle_seconds(watch, "victim") >= 1,
            timeout=10,
            what="the victim to idle a second",
        )
        config = {"url": valkey.url, "idle_seconds": 3600}
        younger = action_run("redis", config, CTX)
        config["idle_seconds"] = 1
        older = action_run("redis", config, CTX)

        assert younger.output == "disconnected 0 idle client(s)"
        assert older.ok
        assert older.output == "disconnected 1 idle client(s)"
        assert _client_names(watch) == ["watch"]
    finally:
        valkey.stop()


def test_celery__purge__empties_that_queue_and_no_other():
    purged, kept = (
        f"heal-purge-{uuid.uuid4().hex[:8]}",
        f"heal-kept-{uuid.uuid4().hex[:8]}",
    )
    for _ in range(3):
        app.send_task("healing.nothing", queue=purged)
    app.send_task("healing.nothing", queue=kept)

    first = action_run("celery", {"operation": "purge", "queue": purged}, CTX)
    again = action_run("celery", {"operation": "purge", "queue": purged}, CTX)
    other = action_run("celery", {"operation": "purge", "queue": kept}, CTX)

    assert first.ok
    assert first.output == f"purged 3 message(s) from {purged}"
    assert again.output == f"purged 0 message(s) from {purged}"
    assert other.output == f"purged 1 message(s) from {kept}"


def _pool_pids(host: str) -> set[int]:
    stats = app.control.inspect([host], timeout=1).stats() or {}
    return set(stats.get(host, {}).get("pool", {}).get("processes", []))


@pytest.mark.slow
def test_celery__pool_restart__the_worker_replaces_its_pool_processes(tmp_path: Path):
    host = f"restart-{os.getpid()}@localhost"
    with running_workers_paused(), celery_worker(tmp_path, name="restart"):
        before = _pool_pids(host)
        config = {"operation": "pool_restart", "workers": [host]}
        result = action_run("celery", config, CTX)

        assert result.ok, result.output
        assert result.output == f"pool restart: {host}: reload started"
        assert len(before) == 2

        def replaced() -> bool:
            # A pool process leaves when it next looks for work: give it some.
            app.send_task(SELFTEST_TASK, args=[time.time()])
            now = _pool_pids(host)
            return len(now) == 2 and not now & before

        wait_until(replaced, timeout=30, what="the pool's processes to be replaced")


@pytest.mark.slow
def test_celery__pool_restart_not_allowed_or_no_such_worker__failed_with_why(
    tmp_path: Path,
):
    host = f"norestart-{os.getpid()}@localhost"
    with celery_worker(
        tmp_path, name="norestart", OPSCONSOLE_WORKER_POOL_RESTARTS="false"
    ):
        config = {"operation": "pool_restart", "workers": [host, "nobody@nowhere"]}
        result = action_run("celery", config, CTX)

    assert not result.ok
    assert result.output == (
        f"pool restart: {host}: ValueError('Pool restarts not enabled'); nobody@nowhere: no reply"
    )
