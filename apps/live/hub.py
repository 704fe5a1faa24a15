"""Per-process fan-out of live deltas (ARCHITECTURE flow 6, issue #8).

One hub per event loop (one per web process): one Redis pub/sub subscription, started
by the first socket. Each message is decoded once into a ``Delta``; every tick (100 ms)
the pending deltas are grouped by the set of topics a connection wants, each group is
encoded once into a ``{"type": "deltas", "items": [...]}`` frame and the same frame is
offered to every local connection with that topic set (under daphne it is written to
each socket there and then, framed once: ``Connection.offer``). ``queues`` and
``metrics`` are coalesced per (topic, key): only the latest delta per key per tick
goes out.

While the subscription is down every connection is told ``{"type": "status",
"degraded": true}``; messages published meanwhile are lost, so on recovery each
connection gets ``degraded: false`` and a fresh snapshot.
"""

import asyncio
import gc
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from django.conf import settings
from redis.exceptions import RedisError

from apps import flags
from apps.live.connection import (
    CLOSE_GOING_AWAY,
    CLOSE_IDLE,
    CLOSE_TOO_SLOW,
    Connection,
    Delta,
    Frame,
    delta_frames,
    encode,
)
from apps.live.publisher import TOPICS, channel, seq_key
from apps.live.transport import before_server_shutdown

log = structlog.get_logger(__name__)

COALESCED = frozenset({"queues", "metrics"})
# The console switch that stops streaming (snapshots are still served).
LIVE_SWITCH = "opsconsole.live.enabled"
TICK = 0.1
PING_INTERVAL = 20.0
IDLE_TIMEOUT = 60.0
BACKOFF = (0.2, 5.0)
SHUTDOWN_GRACE = 2.0
# Seq reads share this many Redis connections: a pool without a bound grew to one
# connection per socket in a reconnect storm (1,000 at once) and kept them all.
SEQ_READ_CONNECTIONS = 8


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    user_id: int | None
    topics: tuple[str, ...]
    sent: int
    direct: int
    resyncs: int
    drops: int
    queued: int


@dataclass(frozen=True, slots=True)
class HubStats:
    connected: int
    degraded: bool
    received: int
    coalesced: int
    frames_encoded: int
    sent: int
    direct: int
    resyncs: int
    drops: int
    closed_slow: int
    closed_idle: int
    connections: tuple[ConnectionStats, ...]


class Hub:
    """Fan-out for one event loop; see the module docstring."""

    def __init__(
        self,
        *,
        redis_url: str,
        queue_max: int,
        tick: float = TICK,
        ping_interval: float = PING_INTERVAL,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.redis_url = redis_url
        self.queue_max = queue_max
        self.tick = tick
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
        self.connections: set[Connection] = set()
        self.degraded = False
        # An operator switched streaming off (opsconsole.live.enabled).
        self.paused = False
        self.subscribed = asyncio.Event()
        self._pending: dict[str, list[Delta]] = defaultdict(list)
        self._latest: dict[tuple[str, str], Delta] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._commands: aioredis.Redis | None = None
        # Counters of connections already gone, so totals survive them.
        self._gone = {"sent": 0, "direct": 0, "resyncs": 0, "drops": 0}
        self.counts = {
            "received": 0,
            "coalesced": 0,
            "frames_encoded": 0,
            "closed_slow": 0,
            "closed_idle": 0,
        }

    # --- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        if not self._tasks:
            freeze_startup_heap()
            self._tasks = [
                asyncio.create_task(self._listen()),
                asyncio.create_task(self._tick_loop()),
            ]
            before_server_shutdown(self.going_away)

    async def going_away(self) -> None:
        """Close every socket with 1001 so clients reconnect elsewhere at once;
        wait (briefly) for them to acknowledge."""
        conns = list(self.connections)
        log.info("live.going_away", connections=len(conns))
        for conn in conns:
            self.close(conn, CLOSE_GOING_AWAY)
        if conns:
            await asyncio.wait(
                [asyncio.ensure_future(c.gone.wait()) for c in conns],
                timeout=SHUTDOWN_GRACE,
            )

    def attach(self, conn: Connection) -> None:
        self.start()
        self.connections.add(conn)
        conn.start()
        if self.degraded:
            conn.offer(Frame(encode({"type": "status", "degraded": True})))
        if self.paused:
            conn.offer(Frame(encode({"type": "status", "paused": True})))

    def detach(self, conn: Connection) -> None:
        conn.stop()
        if conn in self.connections:
            self.connections.discard(conn)
            self._gone["sent"] += conn.sent
            self._gone["direct"] += conn.direct_sent
            self._gone["resyncs"] += conn.outbox.resyncs
            self._gone["drops"] += conn.outbox.drops

    def close(self, conn: Connection, code: int) -> None:
        """Stop writing to ``conn`` and close its socket with ``code``."""
        if conn.closing:
            return
        conn.closing = True
        self.detach(conn)
        task = asyncio.create_task(conn.peer.close_with(code))
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    # --- reading Redis -------------------------------------------------------
    def ingest(self, raw: bytes | str) -> None:
        """Decode one published message and hold it for the next tick."""
        try:
            data = json.loads(raw)
            delta = Delta(
                data["topic"],
                int(data["seq"]),
                data.get("key", ""),
                data.get("payload"),
                data.get("trace_id", ""),
                float(data.get("at", 0.0)),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("live.message_invalid", size=len(raw))
            return
        if delta.topic not in TOPICS:
            return
        self.counts["received"] += 1
        if delta.topic in COALESCED:
            slot = (delta.topic, delta.key)
            held = self._latest.get(slot)
            if held is not None:
                self.counts["coalesced"] += 1
                if held.seq > delta.seq:
                    return
            self._latest[slot] = delta
        else:
            self._pending[delta.topic].append(delta)

    async def _listen(self) -> None:
        delay = BACKOFF[0]
        while True:
            client = aioredis.Redis.from_url(
                self.redis_url,
                socket_connect_timeout=2,
                socket_keepalive=True,
                health_check_interval=5,
            )
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(channel())
                self._up()
                delay = BACKOFF[0]
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=1.0
                    )
                    if message is not None:
                        self.ingest(message["data"])
            except (RedisError, OSError) as exc:
                self._down(exc)
            finally:
                await _quietly_close(pubsub, client)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311
            delay = min(delay * 2, BACKOFF[1])

    def _up(self) -> None:
        self.subscribed.set()
        if not self.degraded:
            log.info("live.subscribed", channel=channel())
            return
        self.degraded = False
        log.info("live.recovered", connections=len(self.connections))
        status = Frame(encode({"type": "status", "degraded": False}))
        for conn in list(self.connections):
            conn.outbox.resync("recovered")
            self._offer(conn, status)

    def _down(self, exc: BaseException) -> None:
        self.subscribed.clear()
        if self.degraded:
            return
        self.degraded = True
        log.warning("live.subscription_lost", error=str(exc))
        status = Frame(encode({"type": "status", "degraded": True}))
        for conn in list(self.connections):
            self._offer(conn, status)

    async def read_seqs(self, topics: frozenset[str]) -> dict[str, int]:
        """The current seq of each topic; 0 for all when Redis does not answer."""
        ordered = sorted(topics)
        if self._commands is None:
            pool = aioredis.BlockingConnectionPool.from_url(
                self.redis_url,
                max_connections=SEQ_READ_CONNECTIONS,
                timeout=2,
                socket_connect_timeout=1,
                socket_timeout=1,
            )
            self._commands = aioredis.Redis(connection_pool=pool)
        try:
            await asyncio.wait_for(self.subscribed.wait(), timeout=2)
            values = await self._commands.mget([seq_key(t) for t in ordered])
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("live.seq_read_failed", error=str(exc))
            return dict.fromkeys(ordered, 0)
        return {t: int(v or 0) for t, v in zip(ordered, values, strict=True)}

    # --- writing frames ------------------------------------------------------
    def follow_switch(self, enabled: bool) -> None:
        """Stop or restart streaming as ``opsconsole.live.enabled`` says. Resuming
        resyncs every socket: the deltas dropped meanwhile are in its snapshot."""
        if enabled is not self.paused:
            return
        self.paused = not enabled
        log.info("live.switched", streaming=enabled, connections=len(self.connections))
        status = Frame(encode({"type": "status", "paused": self.paused}))
        for conn in list(self.connections):
            if enabled:
                conn.outbox.resync("resumed")
            self._offer(conn, status)

    def flush(self) -> int:
        """Send this tick's deltas; returns the number of frames encoded."""
        by_topic = self._take_pending()
        if not by_topic or self.paused:
            return 0
        frames: dict[frozenset[str], list[Frame]] = {}
        for conn in list(self.connections):
            wanted = frozenset(conn.topics & by_topic.keys())
            if not wanted:
                continue
            group = frames.get(wanted)
            if group is None:
                items = (d for t in sorted(wanted) for d in by_topic[t])
                group = frames[wanted] = delta_frames(items)
            for frame in group:
                if conn.closing:
                    break
                self._offer(conn, frame)
        encoded = sum(len(group) for group in frames.values())
        self.counts["frames_encoded"] += encoded
        return encoded

    def _take_pending(self) -> dict[str, list[Delta]]:
        by_topic = {t: sorted(ds, key=_by_seq) for t, ds in self._pending.items() if ds}
        for delta in sorted(self._latest.values(), key=_by_seq):
            by_topic.setdefault(delta.topic, []).append(delta)
        self._pending.clear()
        self._latest.clear()
        return by_topic

    def _offer(self, conn: Connection, frame: Frame) -> None:
        if not conn.offer(frame):
            log.warning("live.client_too_slow", user_id=conn.user_id)
            self.counts["closed_slow"] += 1
            self.close(conn, CLOSE_TOO_SLOW)

    def keepalive(self, now: float) -> None:
        """Ping connections due one; close those silent past the idle timeout."""
        ping = Frame(encode({"type": "ping"}))
        for conn in list(self.connections):
            if now - conn.last_seen >= self.idle_timeout:
                log.info("live.client_idle", user_id=conn.user_id)
                self.counts["closed_idle"] += 1
                self.close(conn, CLOSE_IDLE)
            elif now - conn.last_ping >= self.ping_interval:
                conn.last_ping = now
                self._offer(conn, ping)

    async def _tick_loop(self) -> None:
        # Ticks keep a fixed cadence (the time spent flushing is not added to the
        # wait); after a stall the next tick comes at once, not a burst of them.
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due = max(due + self.tick, loop.time())
            await asyncio.sleep(due - loop.time())
            try:
                self.follow_switch(flags.is_enabled(LIVE_SWITCH, default=True))
                self.flush()
                self.keepalive(time.monotonic())
            except Exception:
                log.exception("live.tick_failed")

    def stats(self) -> HubStats:
        conns = tuple(
            ConnectionStats(
                c.user_id,
                tuple(sorted(c.topics)),
                c.sent,
                c.direct_sent,
                c.outbox.resyncs,
                c.outbox.drops,
                len(c.outbox),
            )
            for c in self.connections
        )
        return HubStats(
            connected=len(conns),
            degraded=self.degraded,
            sent=self._gone["sent"] + sum(c.sent for c in conns),
            direct=self._gone["direct"] + sum(c.direct for c in conns),
            resyncs=self._gone["resyncs"] + sum(c.resyncs for c in conns),
            drops=self._gone["drops"] + sum(c.drops for c in conns),
            connections=conns,
            **self.counts,
        )


_heap_frozen = False
# Full collections after every 100 (not 10) young-generation ones: see below.
GC_FULL_EVERY = 100


def freeze_startup_heap() -> None:
    """Keep the collector's full passes rare and short (once per process, at the
    first live socket).

    With 500 sockets the churn of fan-out triggered a full collection every ~8 s,
    each walking every object of the process (Django, the app, the server: ~270k)
    and stopping the event loop for 100-400 ms (measured in issue #8): the tail of
    delivery latency. What was allocated before the first socket is long-lived, so
    it is frozen out of those passes (reference counting still frees it; only
    cycles among it are never collected), and a full pass waits for 100 collections
    of the middle generation instead of 10.
    """
    global _heap_frozen
    if _heap_frozen:
        return
    _heap_frozen = True
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, GC_FULL_EVERY)
    log.info("live.heap_frozen", objects=gc.get_freeze_count())


def _by_seq(delta: Delta) -> int:
    return delta.seq


async def _quietly_close(pubsub: Any, client: aioredis.Redis) -> None:
    for closing in (pubsub.aclose, client.aclose):
        try:
            await closing()
        except (RedisError, OSError):
            log.debug("live.close_failed")


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def get_hub() -> Hub:
    """The hub of the running event loop, made on first use."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        for stale in [other for other in _hubs if other.is_closed()]:
            del _hubs[stale]
        hub = _hubs[loop] = Hub(
            redis_url=settings.REDIS_URL, queue_max=settings.OPSCONSOLE_LIVE_QUEUE_MAX
        )
    return hub


def hub_stats() -> HubStats | None:
    """Counters of this process's hub (None before the first live socket)."""
    for loop, hub in _hubs.items():
        if not loop.is_closed():
            return hub.stats()
    return None
