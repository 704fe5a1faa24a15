"""Per-process counters for /metrics, published to Redis by every process.

Counters such as the persister's and the live hub's live in the memory of each web
and worker process, so a scrape that lands on one web process cannot read them.
Each process therefore runs a daemon thread that every ``INTERVAL`` seconds writes
a JSON report to ``<prefix>metrics:proc:<host>:<pid>`` with a TTL of three
intervals and stamps the name in the ``<prefix>metrics:procs`` sorted set. The
scrape reads every report younger than the TTL and labels each series with its
process, so counters stay monotonic per process and a dead one simply ages out.
The same pipeline carries the DB query monitor's notes (see dbmonitor).
The thread is separate from the persister's on purpose: that one can spend seconds
in retries while PostgreSQL is away, exactly when its counters matter most.
"""

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis
import structlog
from django.conf import settings
from django.db.backends.postgresql.base import DatabaseWrapper

from apps.metrics import process
from apps.metrics.dbmonitor import MONITOR
from apps.metrics.persister import PersisterStats

log = structlog.get_logger(__name__)
INTERVAL = 5.0
TTL = 3 * INTERVAL
# A process that dropped a sample this recently counts as dropping (component check).
DROP_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class ProcessReport:
    """What one process last published (``persister``/``live`` None when unused)."""

    process: str
    role: str
    at: float
    persister: dict[str, Any] | None
    live: dict[str, Any] | None
    last_drop_at: float | None
    pool: dict[str, int] | None = None

    @property
    def dropping(self) -> bool:
        return self.last_drop_at is not None and time.time() - self.last_drop_at < (
            DROP_WINDOW
        )

    @property
    def spilling(self) -> bool:
        stats = self.persister or {}
        return bool(stats.get("database_away") or stats.get("spill_bytes"))


def _key(name: str = "") -> str:
    prefix = settings.OPSCONSOLE_REDIS_PREFIX
    return f"{prefix}metrics:proc:{name}" if name else f"{prefix}metrics:procs"


def _client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=2, decode_responses=True
    )


class Heartbeat:
    """This process's publisher thread."""

    def __init__(
        self,
        *,
        role: str,
        stats: Callable[[], PersisterStats | None] = process.persister_stats,
        name: str | None = None,
    ) -> None:
        self.role = role
        self.stats = stats
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._drops = 0
        self._last_drop_at: float | None = None
        self._client = _client()
        self._failing = False
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(
            target=self._run, name="metrics-heartbeat", daemon=True
        ).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        self.publish()
        while not self._stop.wait(INTERVAL):
            self.publish()

    def report(self) -> ProcessReport:
        stats = self.stats()
        drops = (
            stats.dropped_buffer_full
            + stats.dropped_spill_full
            + stats.dropped_series_unresolved
            if stats
            else 0
        )
        if drops > self._drops:
            self._drops, self._last_drop_at = drops, time.time()
        return ProcessReport(
            process=self.name,
            role=self.role,
            at=time.time(),
            persister=asdict(stats) if stats else None,
            live=_live_stats(),
            last_drop_at=self._last_drop_at,
            pool=_pool_stats(),
        )

    def publish(self) -> None:
        """Write this process's report; a Redis failure is logged once per outage."""
        report = self.report()
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.set(_key(self.name), json.dumps(asdict(report)), ex=int(TTL))
            pipe.zadd(_key(), {self.name: report.at})
            MONITOR.flush(pipe)
            pipe.execute()
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("metrics.heartbeat_failed", error=type(exc).__name__)
            self._failing = True
            return
        self._failing = False


def _live_stats() -> dict[str, Any] | None:
    from apps.live.hub import hub_stats

    stats = hub_stats()
    if stats is None:
        return None
    counters = asdict(stats)
    del counters["connections"]
    return counters


def _pool_stats() -> dict[str, int] | None:
    # The pool Django made for "default", if any (its ``pool`` property would make one).
    pools = getattr(DatabaseWrapper, "_connection_pools", {})
    pool = pools.get("default")
    return dict(pool.get_stats()) if pool is not None else None


_lock = threading.Lock()
_heartbeat: Heartbeat | None = None


def heartbeat_start(*, role: str) -> Heartbeat:
    """This process's heartbeat, started on first call (its role set then)."""
    global _heartbeat
    if _heartbeat is not None:  # every request calls this: no lock once started
        return _heartbeat
    with _lock:
        if _heartbeat is None:
            _heartbeat = Heartbeat(role=role)
            _heartbeat.start()
        return _heartbeat


def heartbeat_stop() -> None:
    """Stop this process's heartbeat thread, if it runs (tests)."""
    if _heartbeat is not None:
        _heartbeat.stop()


def on_request_started(**_: Any) -> None:
    """``request_started`` receiver: a web process publishes from its first request."""
    heartbeat_start(role="web")


def on_worker_process_init(**_: Any) -> None:
    """``worker_process_init`` receiver: each prefork child publishes its own."""
    heartbeat_start(role="worker")


def fleet_reports() -> list[ProcessReport]:
    """The reports of every process seen within the TTL, by process name."""
    client = _client()
    now = time.time()
    client.zremrangebyscore(_key(), "-inf", now - TTL)
    names = sorted(cast(list[str], client.zrangebyscore(_key(), now - TTL, "+inf")))
    if not names:
        return []
    raw = cast(list[str | None], client.mget([_key(name) for name in names]))
    return [ProcessReport(**json.loads(value)) for value in raw if value is not None]


def _forget_parent() -> None:
    # A forked child (a prefork worker) is a new process: it publishes its own.
    global _heartbeat, _lock
    _heartbeat, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_parent)
