import os

# Playwright's sync API runs an event loop in the test thread (STACK-NOTES pitfall 12).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


import pytest


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
