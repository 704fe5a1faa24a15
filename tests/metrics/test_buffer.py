"""The buffer's packed samples and the series registry: order, counts, and what
happens to samples of a series the registry has moved past."""

import gc
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import OperationalError

from apps import metrics
from apps.metrics import process
from apps.metrics.buffer import Buffer, Samples, at_us
from apps.metrics.db import default_database
from apps.metrics.series import SeriesRegistry, series_of
from apps.metrics.storage import SampleWriter
from tests.metrics.conftest import raw_count, sample

AT = datetime.now(UTC).replace(microsecond=234567) - timedelta(hours=1)


def test_take_put_back__oldest_first__recorded_never_falls():
    buffer = Buffer(bound=100, flush_at=10)
    for n in range(10):
        assert buffer.append(sample("t.buf.order", n, at=AT + timedelta(seconds=n)))
    taken = buffer.take(4)
    assert (len(taken), len(buffer), buffer.recorded) == (4, 6, 10)
    buffer.put_back(taken)
    assert (len(buffer), buffer.recorded) == (10, 10)
    everything = buffer.take(100)
    assert everything.values.tolist() == [float(n) for n in range(10)]
    assert everything.at_us.tolist() == [
        at_us(AT + timedelta(seconds=n)) for n in range(10)
    ]
    assert (len(buffer), buffer.recorded) == (0, 10)


def test_samples__pack_then_unpack__every_column_exact():
    numbering = SeriesRegistry()
    rows = [
        (series_of("t.buf.pack", (("host", "a"),)), at_us(AT), -1.5e300),
        (series_of("t.buf.pack", ()), at_us(AT) + 1, 5e-324),
        (series_of("t.buf.pack", (("host", "a"),)), 0, 0.1),
    ]
    samples = Samples.from_rows(rows, numbering)
    assert Samples.unpack(samples.pack()).rows(numbering) == rows


def test_add__past_the_bound__refused_and_counted():
    buffer = Buffer(bound=3, flush_at=2)
    row = sample("t.buf.bound", 1.0, at=AT)
    assert [buffer.append(row) for _ in range(5)] == [True, True, True, False, False]
    assert (len(buffer), buffer.recorded, buffer.dropped) == (3, 3, 2)
    assert buffer.wake.is_set()


def test_record__many_samples__no_object_left_for_the_collector():
    # A tracked object per buffered sample made every collection walk the buffer.
    metrics.record("t.buf.gc", 1.0, {"host": "a"})  # known from here on
    buffer = Buffer(bound=10_000, flush_at=10_000)
    started, process.current = process.current, buffer
    gc.disable()
    try:
        gc.collect()
        before = gc.get_count()[0]
        for n in range(5000):
            metrics.record("t.buf.gc", float(n), {"host": "a"})
        grown = gc.get_count()[0] - before
    finally:
        gc.enable()
        process.current = started
    assert len(buffer) == 5000
    assert grown < 100  # other threads allocate a little meanwhile


def test_registry__generations__numbers_resolve_until_two_switches_later():
    numbering = SeriesRegistry(max_size=2)
    first = [numbering.index(series_of("t.reg", (("n", str(n)),))) for n in (0, 1)]
    numbering.known["cached"] = first[0]
    # When a third series starts generation 1
    third = numbering.index(series_of("t.reg", (("n", "2"),)))
    assert numbering.known == {}
    # Then generation 0 still resolves, in one batch with generation 1
    resolves, distinct, positions = numbering.lookup(
        np.array([*first, third, first[0]])
    )
    assert resolves.tolist() == [True] * 4
    assert [distinct[p] for p in positions] == [
        series_of("t.reg", (("n", str(n)),)) for n in (0, 1, 2, 0)
    ]
    # When generation 2 starts, generation 0 no longer resolves
    for n in (3, 4):
        numbering.index(series_of("t.reg", (("n", str(n)),)))
    resolves, distinct, positions = numbering.lookup(np.array([first[1], third]))
    assert resolves.tolist() == [False, True]
    assert [distinct[p] for p in positions] == [series_of("t.reg", (("n", "2"),))]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_write__series_two_generations_old__left_out_and_counted():
    numbering = SeriesRegistry(max_size=1)
    old = Samples.from_rows([sample("t.reg.old", 1.0, at=AT)], numbering)
    kept = Samples.from_rows([sample("t.reg.kept", 2.0, at=AT)], numbering)
    numbering.index(series_of("t.reg.later", ()))  # generation 2: "old" is gone
    writer = SampleWriter(database=default_database, numbering=numbering)
    writer.write(
        Samples(
            np.concatenate([old.numbers, kept.numbers]),
            np.concatenate([old.at_us, kept.at_us]),
            np.concatenate([old.values, kept.values]),
        )
    )
    assert (raw_count("t.reg.old"), raw_count("t.reg.kept")) == (0, 1)
    assert writer.unresolved == 1


def _batch(numbering: SeriesRegistry, name: str, *hosts: str) -> Samples:
    return Samples.from_rows(
        [sample(name, float(n), at=AT, host=h) for n, h in enumerate(hosts)], numbering
    )


def _landed_by_host(name: str) -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.tags->>'host', count(*) FROM metrics_sample m "
            "JOIN metrics_series s ON s.id = m.series_id WHERE s.name = %s "
            "GROUP BY 1",
            [name],
        )
        return dict(cursor.fetchall())


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_write__series_written_before__ids_found_without_a_registry_lookup():
    # Given a writer that has written series a and b once
    numbering = SeriesRegistry()
    writer = SampleWriter(database=default_database, numbering=numbering)
    writer.write(_batch(numbering, "t.ids", "a", "b"))
    lookups = []
    lookup = numbering.lookup
    numbering.lookup = lambda numbers: (lookups.append(len(numbers)), lookup(numbers))[
        1
    ]
    # When a batch holds only those series, then one with a new series too
    writer.write(_batch(numbering, "t.ids", "b", "a", "a"))
    assert lookups == []
    writer.write(_batch(numbering, "t.ids", "c", "a"))
    # Then only the second needed the registry, and every row has its own series
    assert lookups == [2]
    assert _landed_by_host("t.ids") == {"a": 4, "b": 2, "c": 1}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_write__series_written_two_generations_ago__not_found_by_the_old_table():
    # Given a writer that has written series "old" in the registry's generation 0
    numbering = SeriesRegistry(max_size=1)
    writer = SampleWriter(database=default_database, numbering=numbering)
    old = _batch(numbering, "t.ids.gen", "old")
    writer.write(old)
    # When two more generations start and a sample of "old" buffered before comes
    numbering.index(series_of("t.ids.gen1", ()))
    numbering.index(series_of("t.ids.gen2", ()))
    writer.write(old)
    # Then it is counted as unresolved, as the registry says, not written
    assert _landed_by_host("t.ids.gen") == {"old": 1}
    assert writer.unresolved == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_write__retried_after_a_failure__unresolved_counted_once():
    # Given a batch with one sample whose series is gone and one that resolves,
    # and a database whose first connection attempt fails
    numbering = SeriesRegistry(max_size=1)
    old = Samples.from_rows([sample("t.reg.retry.old", 1.0, at=AT)], numbering)
    kept = Samples.from_rows([sample("t.reg.retry", 2.0, at=AT)], numbering)
    numbering.index(series_of("t.reg.retry.later", ()))
    batch = Samples(
        np.concatenate([old.numbers, kept.numbers]),
        np.concatenate([old.at_us, kept.at_us]),
        np.concatenate([old.values, kept.values]),
    )
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise OperationalError("connection refused")
        return default_database()

    writer = SampleWriter(database=flaky, numbering=numbering)
    # When the write fails once and is tried again
    with pytest.raises(OperationalError):
        writer.write(batch)
    writer.write(batch)
    # Then the sample left out is counted once
    assert (raw_count("t.reg.retry.old"), raw_count("t.reg.retry")) == (0, 1)
    assert writer.unresolved == 1
