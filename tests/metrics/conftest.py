import contextlib
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections
from django.db.utils import load_backend

from apps.metrics import process
from apps.metrics.buffer import Buffer, sample_row
from apps.metrics.db import default_database
from apps.metrics.persister import Persister
from tests.metrics.proxy import Proxy


@pytest.fixture(autouse=True, scope="session")
def _spill_dir_of_the_session(tmp_path_factory, django_db_setup):
    # The process-wide persister starts on the first record and reads this then.
    settings.OPSCONSOLE_METRICS_SPILL_DIR = tmp_path_factory.mktemp("spill")
    yield
    # Before the test database is dropped: the thread holds a connection to it.
    process.shutdown()


def sample(name: str, value: float, *, at: datetime | None = None, **tags: str):
    return sample_row(name, tuple(sorted(tags.items())), at or datetime.now(UTC), value)


def raw_count(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM metrics_sample m JOIN metrics_series s "
            "ON s.id = m.series_id WHERE s.name = %s",
            [name],
        )
        return cursor.fetchone()[0]


def idle_persister(
    spill_dir: Path, *, bound: int, batch: int, interval: float = 60
) -> Persister:
    """A persister not started, whose timer would not fire within a test: its
    cycles run when the test calls them (or starts it)."""
    return Persister(
        buffer=Buffer(bound=bound, flush_at=batch),
        spill_dir=spill_dir,
        spill_max_bytes=2**20,
        interval=interval,
        batch=batch,
        database=default_database,
    )


@contextlib.contextmanager
def running_persister(
    spill_dir: Path,
    *,
    database=default_database,
    bound=50_000,
    batch=1000,
    spill_max_bytes=64 * 2**20,
):
    buffer = Buffer(bound=bound, flush_at=batch)
    persister = Persister(
        buffer=buffer,
        spill_dir=spill_dir,
        spill_max_bytes=spill_max_bytes,
        interval=0.02,
        batch=batch,
        database=database,
    )
    persister.start()
    try:
        yield persister
    finally:
        persister.stop()


@pytest.fixture
def outage():
    """The test database reached through a cuttable proxy: a proxy and a
    ``database`` factory giving each thread its own connection through it."""
    params = dict(connections["default"].settings_dict)
    proxy = Proxy(int(params["PORT"]))
    proxy.up()
    params.update(PORT=str(proxy.port), OPTIONS={"connect_timeout": 2})
    local = threading.local()

    def database():
        if not hasattr(local, "wrapper"):
            backend = load_backend(params["ENGINE"])
            # "default": django.contrib.postgres looks type oids up by alias.
            local.wrapper = backend.DatabaseWrapper(params, alias="default")
        return local.wrapper

    proxy.database = database
    yield proxy
    proxy.down()
