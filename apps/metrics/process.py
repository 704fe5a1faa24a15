"""This process's buffer and persister, started on the first ``record()``.

Shutdown hooks: atexit (daphne and the Celery main process exit normally after
their own SIGTERM handling), Celery's ``worker_process_shutdown`` (prefork children
leave with ``os._exit``, which skips atexit), and SIGTERM/SIGINT handlers that
flush and then chain to whatever handler was there before. Signal handlers can
only be installed from the main thread, so a process whose first record comes
from another thread relies on the other two.
"""

import atexit
import os
import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings

from apps.metrics.buffer import Buffer
from apps.metrics.persister import Persister, PersisterStats

_lock = threading.Lock()
# This process's buffer once started: record() reads it directly (a call less).
current: Buffer | None = None
_persister: Persister | None = None
_previous: dict[int, Any] = {}


def buffer() -> Buffer:
    """This process's buffer, its persister started on first use."""
    # "is not None": an empty buffer is falsy (it has __len__).
    return current if current is not None else _start()


def _start() -> Buffer:
    global current, _persister
    with _lock:
        if current is None:
            new_buffer = Buffer(
                bound=settings.OPSCONSOLE_METRICS_BUFFER_MAX,
                flush_at=settings.OPSCONSOLE_METRICS_FLUSH_BATCH,
            )
            _persister = Persister(
                buffer=new_buffer,
                spill_dir=settings.OPSCONSOLE_METRICS_SPILL_DIR,
                spill_max_bytes=settings.OPSCONSOLE_METRICS_SPILL_MAX_MB * 2**20,
                interval=settings.OPSCONSOLE_METRICS_FLUSH_INTERVAL_MS / 1000,
                batch=settings.OPSCONSOLE_METRICS_FLUSH_BATCH,
            )
            _persister.start()
            _install_signal_handlers()
            current = new_buffer
        # Imported here: the heartbeat reads this module's persister_stats().
        from apps.metrics.heartbeat import heartbeat_start

        heartbeat_start(role="process")  # a no-op where a web/worker one runs
        return current


def persister_stats() -> PersisterStats | None:
    """Counters of this process's persister; None before the first record."""
    return _persister.stats() if _persister is not None else None


def shutdown(*_: Any, **__: Any) -> None:
    """Final flush (or spill); safe to call more than once."""
    if _persister is not None:
        _persister.stop()


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        _previous[signum] = signal.getsignal(signum)
        signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    shutdown()
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)
    elif previous in (signal.SIG_DFL, None):
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def connect_signals() -> None:
    """Flush when a Celery worker (or one of its prefork children) stops; publish
    counters from each web process and each worker child (see heartbeat); time
    every query on every new connection (see dbmonitor)."""
    from celery.signals import (
        worker_process_init,
        worker_process_shutdown,
        worker_shutdown,
    )
    from django.core.signals import request_started
    from django.db.backends.signals import connection_created

    from apps.metrics import dbmonitor
    from apps.metrics.heartbeat import on_request_started, on_worker_process_init

    worker_process_shutdown.connect(shutdown, weak=False)
    worker_shutdown.connect(shutdown, weak=False)
    worker_process_init.connect(on_worker_process_init, weak=False)
    request_started.connect(on_request_started, weak=False)
    connection_created.connect(dbmonitor.install, weak=False)


def _forget_parent() -> None:
    # A forked child inherits the parent's buffer but not its thread: start afresh.
    global current, _persister
    current, _persister = None, None
    _previous.clear()


atexit.register(shutdown)
os.register_at_fork(after_in_child=_forget_parent)
