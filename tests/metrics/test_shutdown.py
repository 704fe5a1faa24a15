"""SIGTERM in the middle of a burst of record() calls: every recorded sample lands."""

import signal
import sys

import pytest
from django.db import connection

from tests.metrics.conftest import raw_count
from tests.procs import Proc, child_env, wait_until

# Autocommit: a test transaction would hold a lock that blocks the partition DDL.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
READY = 20_000


def test_sigterm__mid_burst__every_recorded_sample_lands(tmp_path):
    # Given a process whose persister would not flush for ten minutes on its own
    child = Proc(
        "burst",
        [sys.executable, "-m", "tests.metrics.recorder", "burst", "t.sigterm", "20000"],
        child_env(
            OPSCONSOLE_METRICS_SPILL_DIR=str(tmp_path),
            OPSCONSOLE_METRICS_FLUSH_INTERVAL_MS="600000",
            OPSCONSOLE_METRICS_FLUSH_BATCH="2000000",
            OPSCONSOLE_METRICS_BUFFER_MAX="2000000",
        ),
        tmp_path / "burst.log",
    )
    wait_until(lambda: "ready" in child.output(), timeout=60, what=child.log)
    assert raw_count("t.sigterm") == 0
    # When SIGTERM arrives while it keeps recording
    assert child.stop(signal.SIGTERM, timeout=60) == -signal.SIGTERM, child.output()
    # Then the samples 0..n-1 it recorded are all in the database, none twice
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT value), max(value) FROM metrics_sample m "
            "JOIN metrics_series s ON s.id = m.series_id WHERE s.name = 't.sigterm'"
        )
        count, distinct, highest = cursor.fetchone()
    assert count >= READY
    assert count == distinct == highest + 1
