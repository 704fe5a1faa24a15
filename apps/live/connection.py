"""One live socket as the hub sees it: its topics, bounded outbox and writer task.

The hub never awaits a client. It offers each connection a ready-encoded ``Frame``;
the connection's outbox holds at most ``limit`` of them. On overflow the backlog is
dropped and replaced by one ``Resync`` marker, so the writer sends a fresh snapshot
instead of stale deltas; ``strikes`` overflows in a row within ``window`` seconds
(no catching up in between) mean the client cannot keep up and it is closed.

Where the server allows it (daphne: ``transport.direct_writer``) and nothing is queued
or being written ahead of it, an offered frame is written to the socket at once, as
bytes framed once for all sockets; otherwise it goes through the outbox and the
writer task, the portable path.
"""

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from apps.live.transport import DirectWrite, ws_text_frame

log = structlog.get_logger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TOO_SLOW = 4408
CLOSE_IDLE = 4410


@dataclass(frozen=True, slots=True)
class Delta:
    """One published change, decoded once by the hub."""

    topic: str
    seq: int
    key: str
    payload: Any
    trace_id: str
    at: float

    def as_item(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "seq": self.seq,
            "key": self.key,
            "payload": self.payload,
            "trace_id": self.trace_id,
            "at": self.at,
        }


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def encode_deltas(items: Iterable[Delta]) -> str:
    return encode({"type": "deltas", "items": [item.as_item() for item in items]})


@dataclass(frozen=True, slots=True)
class Frame:
    """A text frame encoded once and shared by every connection it is offered to."""

    text: str
    items: tuple[Delta, ...] = ()
    # The same text as WebSocket frame bytes, for sockets written to directly.
    wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "wire", ws_text_frame(self.text))

    def text_after(self, floors: dict[str, int]) -> str | None:
        """The frame without deltas already covered by a snapshot (``seq <= floor``)."""
        if not floors or all(d.seq > floors.get(d.topic, 0) for d in self.items):
            return self.text
        kept = [d for d in self.items if d.seq > floors.get(d.topic, 0)]
        return encode_deltas(kept) if kept else None


# daphne (autobahn) refuses frames over 1 MiB; a busy tick is split below that.
MAX_FRAME_BYTES = 512 * 1024


def delta_frames(
    items: Iterable[Delta], *, limit: int = MAX_FRAME_BYTES
) -> list[Frame]:
    """``items`` as one or more deltas frames, each under ``limit`` bytes where a
    single item allows; every item is encoded once."""
    frames: list[Frame] = []
    parts: list[str] = []
    chunk: list[Delta] = []
    size = 0
    for item in items:
        part = encode(item.as_item())
        if chunk and size + len(part) > limit:
            frames.append(_deltas_frame(parts, chunk))
            parts, chunk, size = [], [], 0
        parts.append(part)
        chunk.append(item)
        size += len(part) + 1
    if chunk:
        frames.append(_deltas_frame(parts, chunk))
    return frames


def _deltas_frame(parts: list[str], chunk: list[Delta]) -> Frame:
    return Frame('{"type":"deltas","items":[' + ",".join(parts) + "]}", tuple(chunk))


@dataclass(frozen=True, slots=True)
class Resync:
    """Marker: send a fresh snapshot of the connection's topics."""

    reason: str


class Outbox:
    """A bounded queue of frames; overflow turns the backlog into one resync marker."""

    def __init__(
        self,
        *,
        limit: int,
        strikes: int = 3,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.strikes = strikes
        self.window = window
        self._clock = clock
        self._items: deque[Frame | Resync] = deque()
        self._ready = asyncio.Event()
        self._overflows: deque[float] = deque()
        self.drops = 0
        self.resyncs = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, frame: Frame) -> bool:
        """Queue ``frame``; False when the client overflowed too often (close it)."""
        if len(self._items) < self.limit:
            self._items.append(frame)
            self._ready.set()
            return True
        now = self._clock()
        self._overflows.append(now)
        while self._overflows and self._overflows[0] < now - self.window:
            self._overflows.popleft()
        self.resync("overflow")
        return len(self._overflows) < self.strikes

    def resync(self, reason: str) -> None:
        """Drop the backlog: a snapshot supersedes every queued delta."""
        self.drops += sum(isinstance(item, Frame) for item in self._items)
        self._items.clear()
        self._items.append(Resync(reason))
        self.resyncs += 1
        self._ready.set()

    def caught_up(self) -> None:
        """The writer emptied the queue: the overflow streak is over."""
        self._overflows.clear()

    async def get(self) -> Frame | Resync:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


class Peer(Protocol):
    """What a connection needs from its socket (``LiveConsumer`` implements it)."""

    async def send_frame(self, text: str) -> None: ...

    async def send_snapshot(
        self, topics: frozenset[str], reason: str
    ) -> dict[str, int]:
        """Send a snapshot of ``topics``; return the seq it covers per topic."""
        ...

    async def close_with(self, code: int) -> None: ...


class Connection:
    """A socket's subscription, outbox, counters and writer task."""

    def __init__(
        self,
        peer: Peer,
        *,
        limit: int,
        user_id: int | None = None,
        direct: DirectWrite | None = None,
    ) -> None:
        self.peer = peer
        self.direct = direct
        self.user_id = user_id
        self.outbox = Outbox(limit=limit)
        self.topics: frozenset[str] = frozenset()
        self.floors: dict[str, int] = {}
        self.sent = 0
        self.direct_sent = 0
        # The writer holds an item (a frame, or a snapshot being built and sent).
        self._busy = False
        self.last_seen = self.last_ping = time.monotonic()
        self.closing = False
        self.gone = asyncio.Event()  # set when the socket has disconnected
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop())

    def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()

    def touch(self) -> None:
        self.last_seen = time.monotonic()

    def offer(self, frame: Frame) -> bool:
        """Write ``frame`` now if nothing is ahead of it, else queue it; False when
        the client overflowed too often (close it)."""
        if self._write_now(frame):
            return True
        return self.outbox.put(frame)

    def _write_now(self, frame: Frame) -> bool:
        if self.direct is None or self._busy or len(self.outbox):
            return False
        # A frame the last snapshot partly covers is re-encoded by the writer.
        if frame.text_after(self.floors) is not frame.text:
            return False
        if not self.direct(frame.wire):
            return False
        self.sent += 1
        self.direct_sent += 1
        return True

    async def _write_loop(self) -> None:
        try:
            while True:
                item = await self.outbox.get()
                self._busy = True
                await self._write(item)
                self._busy = False
                if not len(self.outbox):
                    self.outbox.caught_up()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("live.writer_failed", user_id=self.user_id)
            self.closing = True
            await self.peer.close_with(CLOSE_INTERNAL_ERROR)

    async def _write(self, item: Frame | Resync) -> None:
        if isinstance(item, Resync):
            if self.topics:
                self.floors = await self.peer.send_snapshot(self.topics, item.reason)
                self.sent += 1
            return
        text = item.text_after(self.floors)
        if text is not None:
            await self.peer.send_frame(text)
            self.sent += 1
