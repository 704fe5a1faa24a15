"""Each process's compiled flag snapshot and how changes reach it (ARCHITECTURE flow 4).

The snapshot is built from PostgreSQL, on first use and whenever the flag set changes.
A writer, after commit, rebuilds its own snapshot, bumps ``<prefix>flags:version`` in
Redis and publishes on ``<prefix>flags``; every other process has a daemon thread
subscribed there that rebuilds on each message. While Redis is unreachable that thread
polls the database fingerprint instead, the last snapshot keeps serving, and
``snapshot_health()`` says degraded.
"""

import asyncio
import gc
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import redis
import structlog
from django.conf import settings
from django.db import connection

from apps.flags.engine import Snapshot, compile_snapshot
from apps.flags.usage import usage

log = structlog.get_logger(__name__)

POLL_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class SnapshotHealth:
    loaded: bool
    degraded: bool
    reason: str
    version: str
    built_at: float


def version_key() -> str:
    return f"{settings.OPSCONSOLE_REDIS_PREFIX}flags:version"


def invalidation_channel() -> str:
    return f"{settings.OPSCONSOLE_REDIS_PREFIX}flags"


def build_snapshot() -> Snapshot:
    """Compile the flag set as PostgreSQL has it now."""
    from apps.flags import selectors

    with _collector_paused():
        # The fingerprint is read first: a write landing in between only makes the
        # next check rebuild once more, never keeps a stale snapshot.
        version = selectors.flags_state_version()
        return compile_snapshot(
            selectors.flag_specs_live(), selectors.segment_specs_all(), version=version
        )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A build allocates many containers at once, so the cyclic collector would scan
    the growing heap over and over: benchmarks/flags_snapshot.py measured 10,000
    flags compiling in 1.3 s with it and 0.2 s without. Reference counting still
    frees everything acyclic meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _describe(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:200]


class SnapshotCache:
    """The current snapshot of one process and the thread that keeps it fresh."""

    def __init__(
        self, *, redis_url: str | None = None, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self._redis_url = redis_url
        self.poll_seconds = poll_seconds
        # None until the first load; read it (the hot path does), never assign it.
        self.snapshot: Snapshot | None = None
        self._built_at = 0.0
        self._degraded = ""
        self._start_lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> Snapshot:
        """The snapshot to evaluate against; the first call loads it and starts the
        threads (this one's and the usage flusher)."""
        snapshot = self.snapshot
        return snapshot if snapshot is not None else self._start()

    def _start(self) -> Snapshot:
        with self._start_lock:
            if self.snapshot is None:
                self._first_load()
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="flags-snapshot", daemon=True
                )
                self._thread.start()
                usage.start()
        assert self.snapshot is not None  # noqa: S101 - reload() set it
        return self.snapshot

    def _first_load(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.reload()
            return
        # Django refuses ORM calls on an event loop's thread (an async view); the
        # first load, once per process, runs on a helper thread instead.
        with ThreadPoolExecutor(1, thread_name_prefix="flags-load") as pool:
            pool.submit(self._reload_and_close).result()

    def _reload_and_close(self) -> None:
        try:
            self.reload()
        finally:
            connection.close()

    def reload(self) -> Snapshot:
        """Rebuild from PostgreSQL now (builds are serialised: the last one is newest)."""
        with self._build_lock:
            return self._build()

    def refresh(self) -> None:
        """Rebuild when PostgreSQL's fingerprint differs from the snapshot's."""
        from apps.flags.selectors import flags_state_version

        version = flags_state_version()
        if self.snapshot is not None and self.snapshot.version == version:
            return
        with self._build_lock:
            # A build that finished meanwhile (this process's own write) may have
            # read this very fingerprint: then there is nothing left to rebuild.
            if self.snapshot is None or self.snapshot.version != version:
                self._build()

    def _build(self) -> Snapshot:
        snapshot = build_snapshot()
        self.snapshot, self._built_at = snapshot, time.time()
        log.info(
            "flags.snapshot_built", version=snapshot.version, flags=len(snapshot.flags)
        )
        return snapshot

    @property
    def loaded(self) -> bool:
        return self.snapshot is not None

    def health(self) -> SnapshotHealth:
        """Whether changes reach this process through Redis or only by polling."""
        snapshot = self.snapshot
        return SnapshotHealth(
            loaded=snapshot is not None,
            degraded=bool(self._degraded),
            reason=self._degraded,
            version=snapshot.version if snapshot else "",
            built_at=self._built_at,
        )

    def stop(self, timeout: float = 5) -> None:
        """Stop the thread (tests, shutdown); the snapshot stays."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def forget_thread(self) -> None:
        """In a forked child (Celery prefork): the parent's thread did not come along,
        so the child's first evaluation loads afresh and starts its own."""
        self.snapshot = None
        self._thread = None
        self._start_lock = threading.Lock()
        self._build_lock = threading.Lock()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except redis.RedisError as exc:
                self._set_degraded(_describe(exc))
                self._refresh_in_thread()
                self._stop.wait(self.poll_seconds)

    def _listen(self) -> None:
        url = self._redis_url or settings.REDIS_URL
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=1,
            socket_timeout=self.poll_seconds + 1,
            health_check_interval=self.poll_seconds,
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(invalidation_channel())
            self._set_degraded("")
            # Whatever changed while we were not subscribed.
            self._refresh_in_thread()
            while not self._stop.is_set():
                if pubsub.get_message(timeout=self.poll_seconds) is not None:
                    self._refresh_in_thread()
                else:
                    pubsub.check_health()
        finally:
            pubsub.close()
            client.close()

    def _refresh_in_thread(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # noqa: BLE001 - keep serving the last snapshot
            log.warning("flags.snapshot_refresh_failed", error=_describe(exc))
        finally:
            connection.close()

    def _set_degraded(self, reason: str) -> None:
        if reason and not self._degraded:
            log.warning("flags.snapshot_degraded", reason=reason)
        elif self._degraded and not reason:
            log.info("flags.snapshot_recovered")
        self._degraded = reason


# The process's own cache; tests make private ones pointed at their own Redis.
cache = SnapshotCache()
os.register_at_fork(after_in_child=lambda: cache.forget_thread())


def current() -> Snapshot:
    """This process's snapshot."""
    return cache.current()


def snapshot_health() -> SnapshotHealth:
    """This process's snapshot health (for /readyz details)."""
    return cache.health()


def flags_changed() -> None:
    """After a commit: tell every other process (best effort), then rebuild here.

    Telling first means the others rebuild while this one does, rather than after
    (at 10,000 flags a rebuild takes about a second); this process's own subscriber
    then finds its snapshot already at the new fingerprint and skips the rebuild.
    """
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
    )
    try:
        version = client.incr(version_key())
        client.publish(invalidation_channel(), str(version))
    except redis.RedisError as exc:
        # Others notice by polling PostgreSQL while their subscription is down.
        log.warning("flags.invalidation_failed", error=_describe(exc))
    finally:
        client.close()
    if cache.loaded:
        cache.reload()


def readiness() -> dict[str, str]:
    """The /readyz detail for flags: "warn" (never "fail") while degraded."""
    health = cache.health()
    return {
        "status": "warn" if health.degraded else "pass",
        "error": health.reason,
        "version": health.version,
    }
