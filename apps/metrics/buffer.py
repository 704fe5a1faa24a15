"""The bounded in-process buffer ``record()`` appends to and the persister drains.

A buffered sample is 24 bytes packed onto one ``bytearray`` (``PACK``): the
series' number in this process's registry (``series.series_index``), the time
in nanoseconds since the Unix epoch (``time.time_ns()`` as it comes) and the
value. ``Samples`` turns the times into microseconds since 2000-01-01 UTC for
the whole batch (PostgreSQL's own epoch: the writer sends them as binary
timestamptz unchanged). Appending is one in-place
``+=``: a single C call, atomic under the GIL, so a signal handler that flushes
from the main thread can never deadlock on it and a sample is never torn. The
persister slices whole samples off the front (producers only add at the end;
a bytearray drops its head without moving the rest) and reads them as numpy
columns (``Samples``): a batch is encoded for COPY without a Python step per
sample, and the buffer holds no object the garbage collector would track.
"""

import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt

from apps.metrics.series import Series, SeriesRegistry, Tags, registry, series_of

Row = tuple[Series, int, float]
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PG_EPOCH_DATE = PG_EPOCH.date()
# Unix time_ns() // 1000 minus this is microseconds since PG_EPOCH.
PG_EPOCH_UNIX_US = 946_684_800_000_000
_US_NS = 1000
MINUTE_US = 60_000_000
# A buffered sample: series number, Unix ns, value (native order, 24 bytes).
PACK = struct.Struct("=qqd").pack
SAMPLE_BYTES = struct.calcsize("=qqd")
_COLUMNS = np.dtype([("number", "=i8"), ("at_ns", "=i8"), ("value", "=f8")])
DAY_US = 86_400_000_000
_ONE_US = timedelta(microseconds=1)


def at_us(at: datetime) -> int:
    """An aware datetime as microseconds since PG_EPOCH."""
    return (at - PG_EPOCH) // _ONE_US


def unix_ns(us: int) -> int:
    """Microseconds since PG_EPOCH as nanoseconds since the Unix epoch."""
    return (us + PG_EPOCH_UNIX_US) * _US_NS


def us_at(us: int) -> datetime:
    """Microseconds since PG_EPOCH as an aware UTC datetime."""
    return PG_EPOCH + timedelta(microseconds=us)


def us_day(day: int) -> date:
    """Day number ``us // DAY_US`` as a date."""
    return PG_EPOCH_DATE + timedelta(days=day)


def sample_row(name: str, tags: Tags, at: datetime, value: float) -> Row:
    """A buffer row from already validated parts (``tags`` sorted)."""
    return (series_of(name, tags), at_us(at), float(value))


@dataclass(frozen=True, slots=True)
class Samples:
    """A batch of samples as columns: registry numbers, microseconds, values."""

    numbers: npt.NDArray[np.int64]
    at_us: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    @classmethod
    def unpack(cls, packed: bytes | bytearray) -> "Samples":
        """Samples from the buffer's packed form (views of ``packed``)."""
        columns = np.frombuffer(packed, dtype=_COLUMNS)
        at_us = columns["at_ns"] // _US_NS - PG_EPOCH_UNIX_US
        return cls(columns["number"], at_us, columns["value"])

    @classmethod
    def from_rows(
        cls, rows: Sequence[Row], numbering: SeriesRegistry = registry
    ) -> "Samples":
        """Samples from ``(series, at_us, value)`` rows (spill files, tests)."""
        index = numbering.index
        return cls(
            np.fromiter((index(s) for s, _, _ in rows), np.int64, len(rows)),
            np.fromiter((us for _, us, _ in rows), np.int64, len(rows)),
            np.fromiter((v for _, _, v in rows), np.float64, len(rows)),
        )

    def __len__(self) -> int:
        return len(self.at_us)

    def select(self, keep: npt.NDArray[np.bool_]) -> "Samples":
        return Samples(self.numbers[keep], self.at_us[keep], self.values[keep])

    def pack(self) -> bytes:
        """The buffer's packed form of these samples."""
        columns = np.empty(len(self), dtype=_COLUMNS)
        columns["number"], columns["at_ns"], columns["value"] = (
            self.numbers,
            (self.at_us + PG_EPOCH_UNIX_US) * _US_NS,
            self.values,
        )
        return columns.tobytes()

    def rows(self, numbering: SeriesRegistry = registry) -> list[Row]:
        """``(series, at_us, value)`` rows of the samples whose series resolve."""
        resolves, distinct, positions = numbering.lookup(self.numbers)
        return list(
            zip(
                [distinct[p] for p in positions.tolist()],
                self.at_us[resolves].tolist(),
                self.values[resolves].tolist(),
                strict=True,
            )
        )


class Buffer:
    """Samples waiting for the persister; refuses (and counts) past ``bound``.

    ``record()`` adds to ``data`` itself (the fast path of ``add``, inlined to
    save a call per sample). While fewer than ``check_at`` bytes wait the
    ``+=`` is all there is to do; from there ``add_slow`` refuses past the bound
    or wakes the persister and raises ``check_at`` to the bound, so a producer
    that runs ahead of the persister does not test the wake event on every
    sample. The persister lowers it again with ``rearm`` before each cycle.
    ``recorded`` is derived (taken + waiting): producers count nothing."""

    def __init__(self, *, bound: int, flush_at: int) -> None:
        self.bound = bound
        self.flush_at = flush_at
        self.wake = threading.Event()
        self.dropped = 0
        self.data = bytearray()
        self.check_at = SAMPLE_BYTES * _check_at(flush_at, bound)
        self._taken = 0
        self._take_lock = threading.Lock()
        self._drop_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.data) // SAMPLE_BYTES

    @property
    def recorded(self) -> int:
        """Samples accepted so far (taken by the persister or waiting)."""
        with self._take_lock:
            return self._taken + len(self.data) // SAMPLE_BYTES

    def append(self, row: Row) -> bool:
        """Queue ``row``; False (and counted) when the buffer is full."""
        series, us, value = row
        return self.add(registry.index(series), unix_ns(us), value)

    def add(self, number: int, ns: int, value: float) -> bool:
        """Queue one sample of series ``number`` at ``ns`` (Unix nanoseconds);
        False (and counted) when full."""
        data = self.data
        if len(data) < self.check_at:
            data += PACK(number, ns, value)
            return True
        return self.add_slow(PACK(number, ns, value))

    def add_slow(self, sample: bytes) -> bool:
        """``add`` of a ``PACK``ed sample from ``check_at`` bytes on: refuse past
        the bound, else queue it and wake the persister."""
        if len(self.data) >= SAMPLE_BYTES * self.bound:
            self.refuse()
            return False
        self.data += sample
        # Raised before the wake: a rearm racing with this one happens after it.
        self.check_at = SAMPLE_BYTES * self.bound
        self.wake.set()
        return True

    def rearm(self) -> None:
        """Clear the wake event and look again from ``flush_at`` samples."""
        self.wake.clear()
        self.check_at = SAMPLE_BYTES * _check_at(self.flush_at, self.bound)

    def refuse(self) -> None:
        """Count one sample refused because the buffer is full."""
        with self._drop_lock:
            self.dropped += 1

    def take(self, limit: int) -> Samples:
        """Up to ``limit`` of the oldest samples, removed from the buffer.

        For one consumer at a time (the persister's cycle lock): producers only
        add at the end, so the whole samples counted first are there to take."""
        with self._take_lock:
            end = SAMPLE_BYTES * min(limit, len(self.data) // SAMPLE_BYTES)
            packed = self.data[:end]
            del self.data[:end]
            self._taken += end // SAMPLE_BYTES
        return Samples.unpack(packed)

    def put_back(self, samples: Samples) -> None:
        """Return samples a failed flush took, ahead of newer ones."""
        with self._take_lock:
            self.data[0:0] = samples.pack()
            self._taken -= len(samples)


def _check_at(flush_at: int, bound: int) -> int:
    return max(0, min(flush_at - 1, bound))
