"""Per-flag evaluation counts, gathered in-process and flushed off the hot path.

The evaluation entry points (``apps.flags.evaluate``/``is_enabled``/``resolve``,
so the OpenFeature provider and OFREP's single evaluation too) add one to
``counts[key]`` for each flag they find: a dict update, no lock, no I/O. OFREP's
bulk evaluation is not counted: a client fetching every flag says nothing about
which it reads, and would make every flag look used. Counts only grow; a daemon
thread adds what grew since its last good flush to FlagUsage every
``FLUSH_SECONDS``. While PostgreSQL is unreachable a flush fails, nothing is marked
flushed, and the next one carries it all. "Last evaluated" is when a flush first
saw a flag's count grow, so it is exact to ``FLUSH_SECONDS``; a process that stops
loses at most its last ``FLUSH_SECONDS`` of counts, and two threads bumping one key
at the same instant may lose one: usage finds stale flags, it does not bill.
"""

import contextlib
import os
import threading
from collections.abc import Callable
from datetime import datetime

import structlog
from django.conf import settings
from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from apps import metrics

log = structlog.get_logger(__name__)

FLUSH_SECONDS = 30.0
# Each good flush also records what it added per flag as a sample of this
# series (issue #7): evaluations per flush interval, summed by the rollups.
EVALUATIONS_METRIC = "flags.evaluations"


def default_database() -> BaseDatabaseWrapper:
    return connections["default"]


class Usage:
    """One process's counts and the thread that flushes them."""

    def __init__(
        self,
        *,
        database: Callable[[], BaseDatabaseWrapper] = default_database,
        interval: float = FLUSH_SECONDS,
    ) -> None:
        self.counts: dict[str, int] = {}
        self.database = database
        self.interval = interval
        self._flushed: dict[str, int] = {}
        self._observed: dict[str, int] = {}
        self._seen_at: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pending(self) -> dict[str, int]:
        """Evaluations counted here and not yet in the database, by key."""
        with self._lock:
            return self._deltas(self.counts.copy())

    def flush(self) -> bool:
        """Add what is pending to FlagUsage; False (all kept) when that fails."""
        # Services import models: not loadable when apps.flags itself is imported.
        from apps.flags.services.usage import UsageDelta, flag_usage_add

        with self._lock:
            counts = self.counts.copy()  # atomic under the GIL
            now = timezone.now()
            for key, count in counts.items():
                if self._observed.get(key) != count:
                    self._seen_at[key] = now
            self._observed = counts
            pending = self._deltas(counts)
            deltas = [UsageDelta(k, n, self._seen_at[k]) for k, n in pending.items()]
            try:
                flag_usage_add(deltas=deltas, database=self.database())
            except Exception as exc:  # noqa: BLE001 - keep counting, flush later
                self._failed(exc, len(deltas))
                return False
            self._flushed.update((key, counts[key]) for key in pending)
        if settings.OPSCONSOLE_METRICS_CONSOLE_SERIES:
            for key, count in pending.items():
                metrics.record(EVALUATIONS_METRIC, count, {"flag": key})
        return True

    def _deltas(self, counts: dict[str, int]) -> dict[str, int]:
        flushed = self._flushed
        return {
            k: n - flushed.get(k, 0) for k, n in counts.items() if n > flushed.get(k, 0)
        }

    def _failed(self, exc: Exception, flags: int) -> None:
        log.warning("flags.usage_flush_failed", flags=flags, error=type(exc).__name__)
        self._close()

    def _close(self) -> None:
        # A broken connection is dropped; the next flush opens a fresh one.
        with contextlib.suppress(DatabaseError):
            self.database().close()

    def start(self) -> None:
        """Start the flushing thread (once per process)."""
        with self._lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="flags-usage", daemon=True
                )
                self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        """Stop the thread after a last flush."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.flush():
                self._close()  # no connection held between flushes
        self.flush()
        self._close()

    def forget(self) -> None:
        """In a forked child: the parent flushes its own counts; start from zero."""
        self.counts.clear()
        self._flushed.clear()
        self._observed = {}
        self._seen_at.clear()
        self._lock = threading.Lock()
        self._thread = None


# The process's own usage; the entry points count into ``counts``.
usage = Usage()
counts = usage.counts
os.register_at_fork(after_in_child=usage.forget)
