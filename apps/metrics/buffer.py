"""The bounded in-process buffer ``record()`` appends to and the persister drains.

A buffered sample is a plain tuple ``(series, at_us, value)``: the interned
``Series`` str, microseconds since 2000-01-01 UTC (PostgreSQL's own epoch, so the
writer sends it as binary timestamptz unchanged) and a float. Lock-free on the
hot path: deque append and popleft are atomic in CPython, so a signal handler
that flushes from the main thread can never deadlock on it. Only the drop
counter takes a lock (many threads may drop at once). The row holds no object
the garbage collector tracks, so CPython untracks it at its first collection
and a long buffer adds nothing to later ones (see ``series``).
"""

import threading
from collections import deque
from datetime import UTC, date, datetime, timedelta
from itertools import repeat
from operator import call

from apps.metrics.series import Series, Tags, series_of

Row = tuple[Series, int, float]
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PG_EPOCH_DATE = PG_EPOCH.date()
# Unix time_ns() // 1000 minus this is microseconds since PG_EPOCH.
PG_EPOCH_UNIX_US = 946_684_800_000_000
MINUTE_US = 60_000_000
DAY_US = 86_400_000_000
_ONE_US = timedelta(microseconds=1)


def at_us(at: datetime) -> int:
    """An aware datetime as microseconds since PG_EPOCH."""
    return (at - PG_EPOCH) // _ONE_US


def us_at(us: int) -> datetime:
    """Microseconds since PG_EPOCH as an aware UTC datetime."""
    return PG_EPOCH + timedelta(microseconds=us)


def us_day(day: int) -> date:
    """Day number ``us // DAY_US`` as a date."""
    return PG_EPOCH_DATE + timedelta(days=day)


def sample_row(name: str, tags: Tags, at: datetime, value: float) -> Row:
    """A buffer row from already validated parts (``tags`` sorted)."""
    return (series_of(name, tags), at_us(at), float(value))


class Buffer:
    """Samples waiting for the persister; refuses (and counts) past ``bound``.

    ``record()`` appends to ``rows`` itself (the fast path of ``append``, inlined
    to save a call per sample). While fewer than ``check_at`` rows wait the append
    is all there is to do (the row that makes ``flush_at`` takes the slow path); from there ``append_slow`` refuses past the bound or wakes the persister
    and raises ``check_at`` to the bound, so a producer that runs ahead of the
    persister does not test the wake event on every sample. The persister lowers
    it again with ``rearm`` before each cycle."""

    def __init__(self, *, bound: int, flush_at: int) -> None:
        self.bound = bound
        self.flush_at = flush_at
        self.wake = threading.Event()
        self.recorded = 0
        self.dropped = 0
        self.rows: deque[Row] = deque()
        self.check_at = _check_at(flush_at, bound)
        self._drop_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, row: Row) -> bool:
        """Queue ``row``; False (and counted) when the buffer is full."""
        rows = self.rows
        if len(rows) < self.check_at:
            rows.append(row)
            self.recorded += 1  # a statistic: a rare lost increment is harmless
            return True
        return self.append_slow(row)

    def append_slow(self, row: Row) -> bool:
        """``append`` from ``check_at`` rows on: refuse past the bound, else queue
        ``row`` and wake the persister."""
        if len(self.rows) >= self.bound:
            self.refuse()
            return False
        self.rows.append(row)
        self.recorded += 1
        # Raised before the wake: a rearm racing with this one happens after it.
        self.check_at = self.bound
        self.wake.set()
        return True

    def rearm(self) -> None:
        """Clear the wake event and look again from ``flush_at`` rows."""
        self.wake.clear()
        self.check_at = _check_at(self.flush_at, self.bound)

    def refuse(self) -> None:
        """Count one sample refused because the buffer is full."""
        with self._drop_lock:
            self.dropped += 1

    def take(self, limit: int) -> list[Row]:
        """Up to ``limit`` of the oldest rows, removed from the buffer.

        For one consumer at a time (the persister's cycle lock): producers only
        add, so the length read first is there to take."""
        count = min(limit, len(self.rows))
        return list(map(call, repeat(self.rows.popleft, count)))

    def put_back(self, rows: list[Row]) -> None:
        """Return rows a failed flush took, oldest first, ahead of newer ones."""
        self.rows.extendleft(reversed(rows))


def _check_at(flush_at: int, bound: int) -> int:
    return max(0, min(flush_at - 1, bound))
