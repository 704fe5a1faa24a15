import os
import time
import warnings

# Playwright's sync API runs an event loop in the test thread (STACK-NOTES pitfall 12).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# Test workers outlive the flushes between tests, and the raw samples they record
# (metrics_sample is partitioned, so flush leaves it) would point at flushed series:
# rolling their minute then fails on the rollup's foreign key. Tests of the task
# outcomes turn them on for a worker of their own (tests/live/task_runs.py).
os.environ.setdefault("OPSCONSOLE_LIVE_TASK_OUTCOMES", "false")
# The same for health checks, breaker calls and flag evaluations; the tests of
# those series turn them on in the test process (tests/metrics/test_series_sources).
os.environ.setdefault("OPSCONSOLE_METRICS_CONSOLE_SERIES", "false")


import pytest

FLUSH_ATTEMPTS = 5


@pytest.fixture(scope="session", autouse=True)
def _flush_outlasts_deadlocks() -> None:
    """Let a transactional test's flush retry when PostgreSQL picks it as a deadlock
    victim.

    Real workers are shared by the session; a task an earlier test enqueued (a
    re-check, a heal's next attempt) may hold row locks while TRUNCATE takes its
    table locks in another order. PostgreSQL then aborts one of the two; when that
    is the flush, trying again once the task's transaction is gone is all it takes.
    """
    from django.core.management.base import CommandError
    from django.core.management.commands import flush

    original = flush.Command.handle

    def handle(self: flush.Command, **options: object) -> None:
        for attempt in range(FLUSH_ATTEMPTS):
            try:
                return original(self, **options)
            except CommandError as exc:
                last = attempt == FLUSH_ATTEMPTS - 1
                if last or "deadlock detected" not in str(exc.__cause__):
                    raise
                # A retry at once can meet the same task mid-way: back off.
                time.sleep(0.2 * 2**attempt)
        return None

    flush.Command.handle = handle  # type: ignore[method-assign]


@pytest.fixture(scope="session", autouse=True)
def _test_database_dropped_cleanly(django_db_setup):
    """End every other session on the test database before it is dropped.

    Background threads (flag usage, metrics heartbeat) and killed subprocesses can
    leave connections behind; DROP DATABASE then fails and, on a shared server, the
    test database is left there. A plain connection does it: Django's pool may have
    been made by a thread that started before the test database existed.
    """
    yield
    import psycopg
    from django.db import connection

    from tests.procs import database_url_for_tests

    if not connection.settings_dict["NAME"].startswith("test_"):
        return  # no test ran against the database: none was made
    _stop_background_threads()
    if connection.settings_dict["OPTIONS"].get("pool"):
        # Else the pool's own thread keeps refilling it after the drop and logs
        # every failed attempt until the interpreter exits.
        connection.close_pool()
    try:
        with psycopg.connect(database_url_for_tests(), connect_timeout=5) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    except psycopg.Error as exc:
        warnings.warn(f"could not end other sessions: {exc}", stacklevel=1)


def _stop_background_threads() -> None:
    """This process's flushers write their last counts while the database exists;
    then nothing is left to log a failing reconnect after the servers stop."""
    from apps.breakers.agent import stop_default
    from apps.flags.snapshot import cache
    from apps.flags.usage import usage
    from apps.metrics import process
    from apps.metrics.heartbeat import heartbeat_stop

    usage.stop()
    cache.stop()
    process.shutdown()
    stop_default()
    heartbeat_stop()


@pytest.fixture(autouse=True)
def _flags_follow_database(request: pytest.FixtureRequest):
    """Every process's flag snapshot matches the database a test starts with.

    A transactional test's flush and restore write the flag rows behind the services'
    backs, so no process hears of it: a snapshot rebuilt in between (flags=0) would
    leave the console switches off for later tests. A test that switched a flag
    inside its rolled-back transaction would leave its own snapshot behind the same
    way. So each database test starts by rebuilding, and a transactional one tells
    the other processes (workers, daphne) too.
    """
    marker = request.node.get_closest_marker("django_db")
    if marker is not None:
        request.getfixturevalue("_django_db_helper")
        from apps.flags.snapshot import cache, flags_changed

        if marker.kwargs.get("transaction"):
            flags_changed()
        elif cache.loaded:
            cache.reload()


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("procs")


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker, session_tmp):
    """A real Celery worker for the session, on the test database."""
    from tests.procs import celery_worker

    with django_db_blocker.unblock(), celery_worker(session_tmp) as proc:
        yield proc


@pytest.fixture(scope="session")
def web(django_db_setup, django_db_blocker, session_tmp):
    """daphne serving the project on a free port, on the test database; its base URL."""
    from tests.procs import daphne

    with django_db_blocker.unblock(), daphne(session_tmp) as url:
        yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A transactional test without serialized_rollback flushes and lets post_migrate
    # re-create content types under new ids; every later serialized_rollback test
    # then fails at setup on duplicate keys. Refuse the mix at collection.
    offenders = [
        item.nodeid
        for item in items
        if (marker := item.get_closest_marker("django_db")) is not None
        and marker.kwargs.get("transaction")
        and not marker.kwargs.get("serialized_rollback")
    ]
    if offenders:
        raise pytest.UsageError(
            "django_db(transaction=True) needs serialized_rollback=True: "
            + ", ".join(offenders)
        )
