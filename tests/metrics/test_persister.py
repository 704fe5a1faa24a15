"""The persister: COPY lands every sample; an outage spills and replays, losing none."""

import contextlib
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError, connection

from apps.metrics import persister as persister_module
from apps.metrics.buffer import Samples
from apps.metrics.db import default_database
from apps.metrics.models import PendingRollup
from apps.metrics.partitions import partition_name, partitions_list
from apps.metrics.persister import CYCLE_SWITCH_INTERVAL, Persister
from apps.metrics.spill import Spill
from apps.metrics.storage import SampleWriter
from tests.metrics.conftest import (
    idle_persister,
    raw_count,
    running_persister,
    sample,
)
from tests.procs import wait_until

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
MINUTE = timedelta(minutes=1)


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
        take, write = persister.buffer.take, persister.writer.write_stream

        def taking(limit):
            seen.append(("take", sys.getswitchinterval()))
            return take(limit)

        def writing(batches):
            seen.append(("write", sys.getswitchinterval()))
            return write(batches)

        persister.buffer.take, persister.writer.write_stream = taking, writing
        persister.buffer.append(sample("t.gil", 1.0))
        wait_until(lambda: raw_count("t.gil") == 1, timeout=20, what="flush")
    assert {step for step, _ in seen} == {"take", "write"}
    assert max(interval for _, interval in seen) <= CYCLE_SWITCH_INTERVAL < before
    assert sys.getswitchinterval() == before


def test_cycle__spill_file_of_a_dead_process__replayed_at_the_next_look(
    tmp_path, monkeypatch
):
    # Given a persister that has looked for spill files once (none then)
    monkeypatch.setattr(persister_module, "SPILL_LOOK_SECONDS", 3.0)
    persister = idle_persister(tmp_path, bound=1000, batch=100)
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


@contextlib.contextmanager
def _producing(persister: Persister, name: str, *, step: int = 1, pause: float = 0):
    """A thread appending samples of ``name`` to the persister's buffer, ``step``
    at a time and ``pause`` seconds apart (a producer's pace, not a wait for an
    outcome), until the block ends; yields ``[count so far]``."""
    recorded = [0]
    going = threading.Event()
    going.set()

    def produce() -> None:
        while going.is_set():
            for _ in range(step):
                persister.buffer.append(sample(name, recorded[0]))
                recorded[0] += 1
            if pause:
                time.sleep(pause)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        yield recorded
    finally:
        going.clear()
        producer.join()


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
    persister = idle_persister(tmp_path, bound=50_000, batch=1000)
    buffer = persister.buffer
    for n in range(30_000):
        buffer.append(sample("t.backlog", n, host=f"h{n % 7}"))
    sizes: list[int] = []
    write = persister.writer.write_stream

    def writing(batches):
        batches = list(batches)
        sizes.append(sum(len(b) for b in batches))
        return write(batches)

    persister.writer.write_stream = writing
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
    persister = idle_persister(tmp_path, bound=10_000, batch=100, interval=600)
    buffer = persister.buffer
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


def _samples(name: str, values: range, *, at: datetime | None = None, **tags: str):
    return Samples.from_rows([sample(name, n, at=at, **tags) for n in values])


def test_write_stream__known_series__every_batch_in_one_copy_minutes_pending():
    base = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
    writer = SampleWriter(database=default_database)
    writer.write(_samples("t.stream", range(1), at=base))
    # When three batches over three minutes stream into one COPY
    refused = writer.write_stream(
        _samples("t.stream", range(m * 10, m * 10 + 10), at=base + m * MINUTE)
        for m in range(3)
    )
    # Then all landed and each minute is pending
    assert refused is None
    assert raw_count("t.stream") == 31
    assert {base, base + MINUTE, base + 2 * MINUTE} <= set(
        PendingRollup.objects.filter(resolution="minute").values_list(
            "bucket_start", flat=True
        )
    )


@pytest.mark.parametrize("unknown", ["series", "day"])
def test_write_stream__batch_with_a_new_series_or_day__ends_the_copy_returned(
    unknown,
):
    now = datetime.now(UTC)
    writer = SampleWriter(database=default_database)
    writer.write(_samples("t.stream.stop", range(1), at=now))
    later = []

    def batches():
        yield _samples("t.stream.stop", range(10), at=now)
        if unknown == "series":
            yield _samples("t.stream.stop", range(5), at=now, host="new")
        else:
            yield _samples("t.stream.stop", range(5), at=now + timedelta(days=3))
        later.append("pulled")
        yield _samples("t.stream.stop", range(7), at=now)

    # When the second batch needs a series upsert or a new partition
    refused = writer.write_stream(batches())
    # Then the COPY ended before it, it comes back unwritten, nothing after it
    # was taken
    assert refused is not None
    assert len(refused) == 5
    assert raw_count("t.stream.stop") == 11
    assert later == []


def test_cycle__copy_fails_mid_stream__every_batch_back_in_order(tmp_path):
    # Given 300 samples waiting and a database that fails after the COPY took
    # three batches of them
    persister = idle_persister(tmp_path, bound=1000, batch=100)
    buffer = persister.buffer
    persister.writer.write(_samples("t.stream.fail", range(1)))
    for n in range(300):
        buffer.append(sample("t.stream.fail", n))
    taken = buffer.take
    buffer.take = lambda limit: taken(min(limit, 100))
    pulled = []

    def failing(batches):
        pulled.extend(len(b) for b in batches)
        raise OperationalError("server closed the connection unexpectedly")

    persister.writer.write_stream = failing
    # When a cycle runs
    persister.cycle()
    # Then the stream had taken all three and every sample is back, in order
    assert pulled[:3] == [100, 100, 100]
    assert persister.stats().database_away
    assert taken(1000).values.tolist() == [float(n) for n in range(300)]


def test_cycle__producer_recording_meanwhile__copy_streams_what_comes(tmp_path):
    # Given a persister and a producer thread recording without pause
    streamed: list[int] = []
    with running_persister(tmp_path, bound=200_000, batch=500) as persister:
        persister.writer.write(_samples("t.stream.live", range(1)))
        write = persister.writer.write_stream

        def counting(batches):
            counted = []

            def each():
                for batch in batches:
                    counted.append(len(batch))
                    yield batch

            try:
                return write(each())
            finally:
                streamed.append(len(counted))

        persister.writer.write_stream = counting
        # When a COPY has taken more than one batch
        with _producing(persister, "t.stream.live") as recorded:
            wait_until(lambda: max(streamed, default=0) > 1, timeout=30, what="stream")
        # Then every sample recorded lands
        wait_until(
            lambda: raw_count("t.stream.live") == recorded[0] + 1,
            timeout=30,
            what="all landed",
        )
    assert persister.stats().flushed >= recorded[0]


def test_cycle__producer_trickling__each_copy_ends_after_a_small_batch(tmp_path):
    # Given a producer recording ~10 samples every 0.5 ms: every tick finds some
    # (the stream would go on), few (~20k samples/s, far below a burst)
    batches_per_copy: list[int] = []
    with running_persister(tmp_path, batch=20) as persister:
        persister.writer.write(_samples("t.stream.trickle", range(1)))
        write = persister.writer.write_stream

        def counting(batches):
            batches = list(batches)
            batches_per_copy.append(len(batches))
            return write(batches)

        persister.writer.write_stream = counting
        with _producing(
            persister, "t.stream.trickle", step=10, pause=0.0005
        ) as recorded:
            wait_until(lambda: len(batches_per_copy) >= 5, timeout=30, what="copies")
        wait_until(
            lambda: raw_count("t.stream.trickle") == recorded[0] + 1,
            timeout=30,
            what="all landed",
        )
    # Then no COPY stayed open past a tick's small batch
    assert max(batches_per_copy) <= 2


def test_cycle__a_few_samples__copy_waits_no_tick_for_more(tmp_path):
    # Given a quiet cycle's worth: ten samples
    persister = idle_persister(tmp_path, bound=1000, batch=100)
    persister.writer.write(_samples("t.stream.quiet", range(1)))
    for n in range(10):
        persister.buffer.append(sample("t.stream.quiet", n))
    takes: list[int] = []
    take = persister.buffer.take
    persister.buffer.take = lambda limit: (takes.append(limit), take(limit))[1]
    # When a cycle runs
    persister.cycle()
    # Then its COPY took the ten and ended; the only other take is the cycle's
    # own look for more (empty)
    assert raw_count("t.stream.quiet") == 11
    assert len(takes) == 2


def test_cycle__switch_interval_set_by_other_code_meanwhile__kept(tmp_path):
    before = sys.getswitchinterval()
    persister = idle_persister(tmp_path, bound=1000, batch=100)
    persister.buffer.append(sample("t.gil.kept", 1.0))
    write = persister.writer.write_stream

    def setting_it(batches):
        sys.setswitchinterval(0.002)  # as other code of the process might
        return write(batches)

    persister.writer.write_stream = setting_it
    try:
        persister.cycle()
        assert raw_count("t.gil.kept") == 1
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(before)
