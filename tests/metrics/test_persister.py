"""The persister: COPY lands every sample; an outage spills and replays, losing none."""

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.metrics import persister as persister_module
from apps.metrics.buffer import Buffer
from apps.metrics.db import default_database
from apps.metrics.models import PendingRollup
from apps.metrics.partitions import partition_name, partitions_list
from apps.metrics.persister import WRITE_SWITCH_INTERVAL, Persister
from apps.metrics.spill import Spill
from apps.metrics.storage import SampleWriter
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


def test_flush__taking_and_writing__gil_switch_interval_lowered_then_put_back(
    tmp_path,
):
    before, seen = sys.getswitchinterval(), []
    with running_persister(tmp_path) as persister:
        take, write = persister.buffer.take, persister.writer.write

        def taking(limit):
            seen.append(("take", sys.getswitchinterval()))
            return take(limit)

        def writing(samples):
            seen.append(("write", sys.getswitchinterval()))
            write(samples)

        persister.buffer.take, persister.writer.write = taking, writing
        persister.buffer.append(sample("t.gil", 1.0))
        wait_until(lambda: raw_count("t.gil") == 1, timeout=20, what="flush")
    assert {step for step, _ in seen} == {"take", "write"}
    assert max(interval for _, interval in seen) <= WRITE_SWITCH_INTERVAL < before
    assert sys.getswitchinterval() == before


def test_cycle__spill_file_of_a_dead_process__replayed_at_the_next_look(
    tmp_path, monkeypatch
):
    # Given a persister that has looked for spill files once (none then)
    monkeypatch.setattr(persister_module, "SPILL_LOOK_SECONDS", 3.0)
    persister = Persister(
        buffer=Buffer(bound=1000, flush_at=100),
        spill_dir=tmp_path,
        spill_max_bytes=2**20,
        interval=60,
        batch=100,
        database=default_database,
    )
    persister.cycle()
    # When a process of this host that is gone has left its spill file behind
    left = Spill(directory=tmp_path, max_bytes=2**20)
    left.write([sample("t.left", n) for n in range(50)])
    left.path.rename(tmp_path / f"spill-{left.host}-{_exited_pid()}.jsonl")
    # Then the next cycles do not look again before the look interval...
    persister.cycle()
    assert raw_count("t.left") == 0

    # ...and a cycle after it replays every sample of the file
    def replayed() -> bool:
        persister.cycle()
        return raw_count("t.left") == 50

    wait_until(replayed, timeout=30, what="replay of the dead process's spill")
    assert persister.stats().replayed == 50
    assert not list(tmp_path.iterdir())


def _exited_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_partition__made_on_demand__brin_summarizes_ranges_as_they_fill():
    # An unsummarized range matches every time: a rollup read scans it whole.
    now = datetime.now(UTC)
    SampleWriter(database=default_database).write([sample("t.brin", 1.0, at=now)])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.reloptions FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "JOIN pg_am a ON a.oid = i.relam "
            "WHERE x.indrelid = %s::regclass AND a.amname = 'brin'",
            [partition_name(now.date())],
        )
        assert cursor.fetchall() == [(["autosummarize=on"],)]


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


def test_cycle__backlog_past_the_batch_size__one_copy_takes_it_all(tmp_path):
    # Given 30 batches' worth waiting (a producer outran the persister)
    buffer = Buffer(bound=50_000, flush_at=1000)
    persister = Persister(
        buffer=buffer,
        spill_dir=tmp_path,
        spill_max_bytes=2**20,
        interval=60,
        batch=1000,
        database=default_database,
    )
    for n in range(30_000):
        buffer.append(sample("t.backlog", n, host=f"h{n % 7}"))
    sizes: list[int] = []
    write = persister.writer.write
    persister.writer.write = lambda rows: (sizes.append(len(rows)), write(rows))[1]
    # When one cycle runs
    persister.cycle()
    # Then a single COPY landed all of it
    assert sizes == [30_000]
    assert raw_count("t.backlog") == 30_000
    assert (persister.stats().flushed, len(buffer)) == (30_000, 0)


def test_write__minutes_0_1_then_0_and_5__exactly_the_touched_minutes_pending():
    base = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
    minute = timedelta(minutes=1)
    writer = SampleWriter(database=default_database)

    def pending() -> set[datetime]:
        return set(
            PendingRollup.objects.filter(
                resolution="minute",
                bucket_start__gte=base,
                bucket_start__lt=base + 10 * minute,
            ).values_list("bucket_start", flat=True)
        )

    # Two neighbouring minutes
    writer.write(
        [
            sample("t.pending", 1, at=base + timedelta(seconds=59)),
            sample("t.pending", 2, at=base + minute),
        ]
    )
    assert pending() == {base, base + minute}
    # Minutes 0 and 5: none of the minutes between them
    writer.write(
        [
            sample("t.pending", 3, at=base + 5 * minute + timedelta(seconds=30)),
            sample("t.pending", 4, at=base + timedelta(seconds=2)),
        ]
    )
    assert pending() == {base, base + minute, base + 5 * minute}
    assert raw_count("t.pending") == 4


def test_wake__flush_batch_reached_twice__flushed_each_time_without_the_timer(
    tmp_path,
):
    # Given a persister whose timer would not fire during the test
    buffer = Buffer(bound=10_000, flush_at=100)
    persister = Persister(
        buffer=buffer,
        spill_dir=tmp_path,
        spill_max_bytes=2**20,
        interval=600,
        batch=100,
        database=default_database,
    )
    persister.start()
    try:
        # When FLUSH_BATCH samples are queued, twice
        for round_ in (1, 2):
            for n in range(100):
                assert buffer.append(sample("t.wake", round_ * 1000 + n))
            # Then each time the count wakes it and they land
            wait_until(
                lambda round_=round_: raw_count("t.wake") == round_ * 100,
                timeout=20,
                what=f"flush {round_}",
            )
    finally:
        persister.stop()
    assert persister.stats().flushed == 200
