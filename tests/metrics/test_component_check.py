"""The persister's health as a component: degraded while spilling, unhealthy dropping."""

import asyncio
import uuid

import pytest

from apps.components.checkers.python import Config, check
from apps.metrics.heartbeat import Heartbeat
from tests.metrics.conftest import running_persister, sample
from tests.procs import wait_until

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def _own_fleet(settings):
    # A Redis namespace of this test's own: only the reports it publishes count.
    # Under the session's prefix, so its clean-up at the end takes these too.
    settings.OPSCONSOLE_REDIS_PREFIX += f"{uuid.uuid4().hex[:8]}:"


def checked(persister):
    Heartbeat(role="test", stats=persister.stats, name="test:1").publish()
    return asyncio.run(check(Config(name="metrics_persister"), 5.0))


def test_check__persister_flushing__healthy(tmp_path):
    with running_persister(tmp_path) as persister:
        persister.buffer.append(sample("t.check.ok", 1))
        wait_until(lambda: persister.stats().flushed == 1, timeout=20, what="flush")
        outcome = checked(persister)
    assert outcome.status == "healthy", outcome.message


def test_check__database_away_and_spilling__degraded(tmp_path, outage):
    outage.down()
    with running_persister(
        tmp_path, database=outage.database, bound=100, batch=10
    ) as persister:
        for n in range(60):
            persister.buffer.append(sample("t.check.spill", n))
        wait_until(lambda: persister.stats().spilled, timeout=30, what="spill")
        outcome = checked(persister)
    assert outcome.status == "degraded", outcome.message
    assert outcome.details["spilling"] == ["test:1"]


def test_check__spill_full_and_dropping__unhealthy(tmp_path, outage):
    outage.down()
    with running_persister(
        tmp_path, database=outage.database, bound=100, batch=10, spill_max_bytes=1
    ) as persister:
        for n in range(60):
            persister.buffer.append(sample("t.check.drop", n))
        wait_until(
            lambda: persister.stats().dropped_spill_full, timeout=30, what="drop"
        )
        outcome = checked(persister)
    assert outcome.status == "unhealthy", outcome.message
    assert outcome.details["dropping"] == ["test:1"]
