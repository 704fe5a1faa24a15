"""The persister: a daemon thread per process that drains the buffer with COPY.

It flushes every ``FLUSH_INTERVAL_MS`` or as soon as ``FLUSH_BATCH`` samples wait,
taking whatever has piled up by then, up to ``COPY_ROWS_MAX`` per COPY; during a
burst the COPY stays open and takes what comes every ``STREAM_TICK``.
A failed flush is retried (tenacity: exponential backoff with jitter); when that
fails too PostgreSQL counts as away: the samples go back to the buffer, the thread
probes again after a growing, jittered pause, and once the buffer is half full it
is spilled to this process's spill file. The first good flush replays the spill
files. On shutdown (atexit, SIGTERM/SIGINT chained to the previous handlers,
Celery's worker shutdown signals) the buffer is flushed, or spilled if the
database is still away, so a graceful stop loses nothing.
"""

import random
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from django.db import DatabaseError, connections
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from apps.metrics import spill as spill_files
from apps.metrics.buffer import Buffer, Samples
from apps.metrics.db import Database, direct_database
from apps.metrics.spill import Spill
from apps.metrics.storage import SampleWriter

log = structlog.get_logger(__name__)
DOWN_PAUSE_MAX = 30.0
# A busy producer fills the buffer while a COPY is under way; taking it all next
# time (not FLUSH_BATCH) spreads each COPY's round trips over more samples. Every
# round trip hands the GIL to a producer that keeps it for up to a switch
# interval, so few big COPYs keep up where many small ones fall behind.
COPY_ROWS_MAX = 100_000
# A write still waits a dozen times (socket, server, pending marks, commit), and
# after each the thread waits up to the switch interval for the GIL: at the
# default 5 ms a 100k COPY took 80-260 ms beside a busy producer against 40-50
# alone, and a burst piled up in the buffer until the producer stopped. For a
# whole cycle (taking and encoding too: numpy hands the GIL back on large
# arrays) the persister asks for the GIL every 0.5 ms, then puts the process's
# interval back: a burst's backlog 20-60k samples instead of 190-470k, the
# whole path +12-38 % (benchmarks/RESULTS.md, session 14).
CYCLE_SWITCH_INTERVAL = 0.0005
# While a burst goes on a COPY stays open: every STREAM_TICK it takes what the
# buffer gained, so the server works through one batch while the next is being
# recorded, and a burst's end waits for a tick's samples instead of a whole
# batch (of 50-100k rows: 15-30 ms). It ends when a tick finds the buffer
# empty, at COPY_ROWS_MAX rows or after STREAM_SECONDS (samples are visible
# after the commit), or at a batch with a series or day it has not written yet.
# A batch of fewer than STREAM_MIN samples (a producer under 256k samples/s,
# whose batches are small anyway) is the last: a steady trickle would otherwise
# hold a transaction open and send hundreds of tiny batches a second, and a
# quiet cycle's COPY would wait a tick for nothing.
STREAM_TICK = 0.001
STREAM_SECONDS = 0.25
STREAM_MIN = 256
# Spill files other processes of this host left (killed before they could
# replay them) are looked for at most this often: each look is a few file-system
# calls, and beside a busy producer every call costs a GIL hand-back (the look
# on every cycle put 20 ms before a burst's first COPY). This process's own
# spill is replayed on the first good flush after an outage, without waiting.
SPILL_LOOK_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class PersisterStats:
    """Counters of one process's persister (the /metrics exposition reads these)."""

    buffered: int
    recorded: int
    flushed: int
    flush_failures: int
    spilled: int
    replayed: int
    spill_bytes: int
    dropped_buffer_full: int
    dropped_spill_full: int
    dropped_series_unresolved: int
    database_away: bool


class Persister:
    """Moves samples from ``buffer`` to the database (this thread's connection
    from ``database()``)."""

    def __init__(
        self,
        *,
        buffer: Buffer,
        spill_dir: Path,
        spill_max_bytes: int,
        interval: float,
        batch: int,
        database: Database = direct_database,
    ) -> None:
        self.buffer = buffer
        self.spill = Spill(directory=spill_dir, max_bytes=spill_max_bytes)
        self.writer = SampleWriter(database=database)
        self.interval = interval
        self.batch = batch
        self.database = database
        self.flushed = 0
        self.flush_failures = 0
        self._away_since: float | None = None
        self._probe_at = 0.0
        self._spill_look_at = 0.0
        self._stopping = threading.Event()
        self._cycle_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._retrying = Retrying(
            stop=stop_after_attempt(3),
            wait=wait_exponential_jitter(multiplier=0.05, max=1.0),
            retry=retry_if_exception_type(DatabaseError),
            before_sleep=lambda _: self._reset_connection(),
            reraise=True,
        )

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="metrics-persister", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after a final flush (or spill); wait up to ``timeout``."""
        self._stopping.set()
        self.buffer.wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None:  # never started: flush from here
            self.cycle(final=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.buffer.wake.wait(self.interval)
            self.buffer.rearm()
            self.cycle()
        self.cycle(final=True)
        self.database().close()
        connections.close_all()  # this thread's own, e.g. opened by signal receivers

    def cycle(self, *, final: bool = False) -> None:
        """One pass: replay spill files, drain the buffer; spill when away."""
        with self._cycle_lock, _gil_eager():
            if self._away_since is None or time.monotonic() >= self._probe_at:
                try:
                    self._drain()
                # Whatever failed, the samples are back in the buffer: keep them
                # and keep the thread alive (a dead persister would lose them all).
                except Exception as exc:  # noqa: BLE001
                    self._went_away(exc)
            if self._away_since is not None:
                self._spill_if_needed(everything=final)

    def _drain(self) -> None:
        if self._away_since is not None or self._spill_look_due():
            for path in self.spill.claim():
                self._replay(path)
        # About one buffer's worth per cycle, as many COPYs as that takes: a
        # producer faster than the database cannot keep a stop waiting for long.
        budget = self.buffer.bound + self.batch
        size = max(self.batch, COPY_ROWS_MAX)
        while budget > 0:
            samples = self.buffer.take(min(size, budget))
            if not len(samples):
                break
            budget -= self._write(_Stream(self.buffer, samples, limit=size))
        if self._away_since is not None:
            log.info("metrics.database_back", away_seconds=self._away_seconds())
        self._away_since = None

    def _spill_look_due(self) -> bool:
        """Whether spill files wait to be replayed; looked at on the first cycle,
        then at most every ``SPILL_LOOK_SECONDS``."""
        now = time.monotonic()
        if now < self._spill_look_at:
            return False
        self._spill_look_at = now + SPILL_LOOK_SECONDS
        return self.spill.has_claimable()

    def _write(self, stream: "_Stream") -> int:
        """Land the stream's batches; the number of samples written."""
        try:
            refused = self._retrying(self.writer.write_stream, stream)
        except BaseException:
            stream.put_back()
            raise
        written = stream.rows
        if refused is not None:  # for the next COPY
            self.buffer.put_back(refused)
            written -= len(refused)
        self.flushed += written
        return written

    def _replay(self, path: Path) -> None:
        samples = Samples.from_rows(spill_files.read(path))
        self._retrying(self.writer.write, samples)
        path.unlink()
        self.spill.replayed += len(samples)
        log.info("metrics.spill_replayed", samples=len(samples), file=path.name)

    def _went_away(self, exc: Exception) -> None:
        self.flush_failures += 1
        self._reset_connection()
        now = time.monotonic()
        if self._away_since is None:
            self._away_since = now
            log.warning("metrics.database_away", error=_first_line(exc))
        pause = min(DOWN_PAUSE_MAX, 0.5 * 2 ** min(self.flush_failures, 6))
        self._probe_at = now + pause * random.uniform(0.5, 1.0)  # noqa: S311 - jitter

    def _spill_if_needed(self, *, everything: bool) -> None:
        if everything or len(self.buffer) >= self.buffer.bound // 2:
            samples = self.buffer.take(len(self.buffer))
            if len(samples):
                rows = samples.rows(self.writer.numbering)
                self.writer.unresolved += len(samples) - len(rows)
                self.spill.write(rows)
                log.info("metrics.spilled", samples=len(rows))

    def _reset_connection(self) -> None:
        try:
            self.database().close()
        except DatabaseError:
            self.database().connection = None

    def _away_seconds(self) -> float:
        return round(time.monotonic() - (self._away_since or time.monotonic()), 3)

    def stats(self) -> PersisterStats:
        return PersisterStats(
            buffered=len(self.buffer),
            recorded=self.buffer.recorded,
            flushed=self.flushed,
            flush_failures=self.flush_failures,
            spilled=self.spill.spilled,
            replayed=self.spill.replayed,
            spill_bytes=self.spill.size(),
            dropped_buffer_full=self.buffer.dropped,
            dropped_spill_full=self.spill.dropped,
            dropped_series_unresolved=self.writer.unresolved,
            database_away=self._away_since is not None,
        )


class _Stream:
    """The batches of one streamed COPY (see STREAM_TICK): ``first``, then what
    the buffer gained each tick. It keeps every batch it took: a retry sends
    them all again, a failure puts them all back."""

    def __init__(self, buffer: Buffer, first: Samples, *, limit: int) -> None:
        self.buffer = buffer
        self.taken = [first]
        self.rows = len(first)
        self.limit = limit
        self.until = time.monotonic() + STREAM_SECONDS

    def __iter__(self) -> Iterator[Samples]:
        yield from list(self.taken)
        while (
            len(self.taken[-1]) >= STREAM_MIN
            and self.rows < self.limit
            and time.monotonic() < self.until
        ):
            time.sleep(STREAM_TICK)
            more = self.buffer.take(self.limit - self.rows)
            if not len(more):
                return
            self.taken.append(more)
            self.rows += len(more)
            yield more

    def put_back(self) -> None:
        """Every batch taken back to the buffer's front, in order."""
        for samples in reversed(self.taken):
            self.buffer.put_back(samples)


@contextmanager
def _gil_eager() -> Iterator[None]:
    """The process's GIL switch interval at most ``CYCLE_SWITCH_INTERVAL`` for
    the block, then as it was, unless other code set it meanwhile."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, CYCLE_SWITCH_INTERVAL))
    lowered = sys.getswitchinterval()
    try:
        yield
    finally:
        if sys.getswitchinterval() == lowered:
            sys.setswitchinterval(before)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
