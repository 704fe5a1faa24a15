"""The persister: COPY lands every sample; an outage spills and replays, losing none."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.metrics.partitions import partition_name, partitions_list
from apps.metrics.spill import Spill
from tests.metrics.conftest import raw_count, running_persister, sample
from tests.procs import wait_until

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_flush__samples_over_two_days__every_sample_lands(tmp_path):
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    with running_persister(tmp_path, batch=2000) as persister:
        for n in range(12_000):
            at = yesterday if n % 3 == 0 else now
            persister.buffer.append(sample("t.copy", n, at=at, host=f"h{n % 4}"))
        wait_until(lambda: raw_count("t.copy") == 12_000, timeout=30, what="flush")
    stats = persister.stats()
    assert (stats.flushed, stats.spilled, stats.dropped_buffer_full) == (12_000, 0, 0)
    assert {partition_name(now.date()), partition_name(yesterday.date())} <= set(
        partitions_list()
    )


def test_flush__postgresql_away_then_back__spills_then_replays_losing_nothing(
    tmp_path, outage
):
    with running_persister(
        tmp_path, database=outage.database, bound=2000, batch=500
    ) as persister:
        persister.buffer.append(sample("t.outage", -1))
        wait_until(lambda: raw_count("t.outage") == 1, timeout=20, what="first flush")
        outage.down()
        for chunk in range(8):
            for n in range(500):
                assert persister.buffer.append(sample("t.outage", chunk * 500 + n))
            wait_until(lambda: len(persister.buffer) < 1000, timeout=30, what="spill")
        assert persister.stats().spilled >= 3000
        assert raw_count("t.outage") == 1
        outage.up()
        wait_until(lambda: raw_count("t.outage") == 4001, timeout=60, what="replay")
    stats = persister.stats()
    assert stats.replayed == stats.spilled
    assert stats.dropped_buffer_full == stats.dropped_spill_full == 0
    assert not Spill(directory=tmp_path, max_bytes=1).has_claimable()


def test_stop__database_still_away__buffer_spilled_for_the_next_start(tmp_path, outage):
    outage.down()
    with running_persister(tmp_path, database=outage.database) as persister:
        for n in range(300):
            persister.buffer.append(sample("t.stop", n))
    assert persister.stats().spilled == 300
    outage.up()
    with running_persister(tmp_path, database=outage.database) as again:
        wait_until(lambda: raw_count("t.stop") == 300, timeout=30, what="replay")
    assert again.stats().replayed == 300
