"""``/ws/live/``: snapshot, then sequenced deltas (ARCHITECTURE flow 6, issue #8).

Client → server (JSON text frames):
- ``{"type": "subscribe", "topics": ["components", ...]}`` replaces the subscription
  and is answered with a snapshot; an unknown topic is answered with
  ``{"type": "error", "detail": ..., "topics": [...]}`` and changes nothing.
- ``{"type": "resync"}``: send a fresh snapshot (after a seq gap).
- ``{"type": "pong"}`` (or any message): the client is alive.

Server → client:
- ``{"type": "snapshot", "reason": "subscribe|requested|overflow|recovered",
  "topics": {topic: {"seq": N, "data": ... [, "error": "unavailable"]}}}``; ``seq``
  is read before the data, so every change after it arrives as a delta.
- ``{"type": "deltas", "items": [{"topic", "seq", "key", "payload", "trace_id",
  "at"}, ...]}``: one frame per 100 ms tick, items ordered by seq within a topic and
  only with ``seq`` above the snapshot's. On ``queues`` and ``metrics`` only the
  latest item per key per tick is sent, so their seqs may skip; on other topics a
  skip is a gap: send ``resync``.
- ``{"type": "status", "degraded": true|false}``: the server lost (or regained) its
  feed; a ``recovered`` snapshot follows ``false``.
- ``{"type": "ping"}`` every 20 s; a socket silent for 60 s is closed with 4410.
- Close codes: 4401 / 4403 (see ``ConsoleConsumer``), 4408 too slow (overflowed
  three times in a row within a minute), 4410 idle, 1001 server going away.
"""

import asyncio
from typing import Any

import structlog
from django.core.serializers.json import DjangoJSONEncoder

from apps.core.consumers import ConsoleConsumer
from apps.live import snapshots
from apps.live.connection import CLOSE_GOING_AWAY, CLOSE_TOO_SLOW, Connection
from apps.live.hub import Hub, get_hub
from apps.live.publisher import TOPICS
from apps.live.transport import (
    DirectWrite,
    Drain,
    allow_slow_close,
    close_going_away,
    direct_writer,
    drain_for,
)

log = structlog.get_logger(__name__)

# A client closed for being too slow gets this long to read its backlog and the
# close frame (4408) behind it before the connection is dropped.
SLOW_CLOSE_SECONDS = 10.0


class LiveConsumer(ConsoleConsumer):
    """Thin door over the hub: parse client messages, send snapshots."""

    # No channel layer: the hub fans out, and a per-socket layer channel would cost a
    # blocking Redis read per socket (an alias that is not configured gives None).
    channel_layer_alias = "live-without-channel-layer"
    hub: Hub | None = None
    conn: Connection | None = None
    drain: Drain | None = None
    direct: DirectWrite | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.drain = drain_for(send)
        self.direct = direct_writer(send, self.drain)
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # daphne cancels every application on shutdown: say "going away" so
            # the client reconnects at once to another process and resyncs.
            await self._going_away(receive)
            raise

    async def on_authenticated(self) -> None:
        self.hub = get_hub()
        self.conn = Connection(
            self,
            limit=self.hub.queue_max,
            user_id=self.scope["user"].pk,
            direct=self.direct,
        )
        self.hub.attach(self.conn)

    async def disconnect(self, code: int) -> None:
        if self.hub is not None and self.conn is not None:
            self.hub.detach(self.conn)
            self.conn.gone.set()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        try:
            await super().receive(text_data, bytes_data)
        except ValueError:
            await self.send_json({"type": "error", "detail": "not JSON"})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if self.conn is None:
            return
        self.conn.touch()
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "subscribe":
            await self._subscribe(self.conn, content.get("topics"))
        elif kind == "resync":
            self.conn.outbox.resync("requested")
        elif kind != "pong":
            await self.send_json({"type": "error", "detail": "unknown message type"})

    async def _subscribe(self, conn: Connection, topics: Any) -> None:
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            await self.send_json({"type": "error", "detail": "topics must be a list"})
            return
        unknown = sorted(set(topics) - TOPICS)
        if unknown:
            await self.send_json(
                {"type": "error", "detail": "unknown topic", "topics": unknown}
            )
            return
        conn.topics = frozenset(topics)
        conn.outbox.resync("subscribe")

    # --- Peer: what the connection's writer calls ------------------------------
    async def send_frame(self, text: str) -> None:
        await self.send(text_data=text)
        if self.drain is not None:
            await self.drain.wait()

    async def send_snapshot(
        self, topics: frozenset[str], reason: str
    ) -> dict[str, int]:
        seqs = await get_hub().read_seqs(topics)
        entries = await snapshots.build(topics)
        body = {t: {"seq": seqs[t], **entries[t]} for t in sorted(topics)}
        message = {"type": "snapshot", "reason": reason, "topics": body}
        await self.send_frame(encode_snapshot(message))
        return seqs

    async def close_with(self, code: int) -> None:
        if code == CLOSE_GOING_AWAY and close_going_away(self.base_send):
            return
        if code == CLOSE_TOO_SLOW:
            allow_slow_close(self.base_send, seconds=SLOW_CLOSE_SECONDS)
        await self.close(code=code)

    async def _going_away(self, receive: Any) -> None:
        if self.hub is None or self.conn is None or self.conn.closing:
            return
        self.hub.detach(self.conn)
        await self.close_with(CLOSE_GOING_AWAY)
        try:
            async with asyncio.timeout(2):
                while (await receive())["type"] != "websocket.disconnect":
                    pass
        except TimeoutError:
            log.info("live.close_unacknowledged", user_id=self.conn.user_id)


# Snapshot data comes from selectors and may hold dates and decimals.
_snapshot_encoder = DjangoJSONEncoder(separators=(",", ":"))


def encode_snapshot(message: dict[str, Any]) -> str:
    return _snapshot_encoder.encode(message)
