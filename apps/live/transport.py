"""Write backpressure from the ASGI server, where the server hides it.

ASGI servers differ: uvicorn's ``send`` waits for the socket to drain, daphne's
returns at once and buffers without bound in Twisted (measured in issue #8: 73 → 829
MB in 16 s with stalled clients). Under daphne we register a streaming producer with
the connection's HTTPChannel (the TCP transport's own producer, which forwards
pause/resume), so Twisted tells us when its write buffer passes 64 KiB and when it
has drained; the connection's writer waits for that, its outbox fills and overflows
into a resync. Elsewhere ``drain_for`` returns None and ``send`` itself pushes back.

Under daphne a tick's frame can also skip the ASGI send path: ``direct_writer`` writes
a frame framed once for every socket (``ws_text_frame``) straight to the TCP
transport, where autobahn would frame it again per socket after two coroutine hops.
Elsewhere it returns None and every frame goes through ``send``.
"""

import asyncio
import contextlib
import functools
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from typing import Any


class Drain:
    """A Twisted push producer that turns pause/resume into an awaitable."""

    def __init__(self) -> None:
        self._writable = asyncio.Event()
        self._writable.set()

    # Twisted's IPushProducer names.
    def pauseProducing(self) -> None:
        self._writable.clear()

    def resumeProducing(self) -> None:
        self._writable.set()

    def stopProducing(self) -> None:  # gone: let the writer finish
        self._writable.set()

    @property
    def paused(self) -> bool:
        return not self._writable.is_set()

    async def wait(self) -> None:
        await self._writable.wait()


def _daphne_protocol(send: Callable[..., Any]) -> Any | None:
    # Channels' session middleware wraps ``send`` in an object keeping ``real_send``;
    # daphne's own is ``partial(server.handle_reply, protocol)``.
    target: Any = send
    for _ in range(8):
        if isinstance(target, functools.partial):
            protocol = target.args[0] if target.args else None
            return protocol if hasattr(protocol, "registerProducer") else None
        target = getattr(getattr(target, "__self__", None), "real_send", None)
        if target is None:
            return None
    return None


def drain_for(send: Callable[..., Any]) -> Drain | None:
    """A ``Drain`` on daphne's connection behind ``send``; None on other servers."""
    protocol = _daphne_protocol(send)
    transport = getattr(protocol, "transport", None)
    if transport is None:
        return None
    # After the upgrade the TCP transport still has daphne's HTTPChannel as its
    # producer; the channel passes pause/resume on to one producer of its own.
    consumer = getattr(transport, "producer", None) or transport
    if not hasattr(consumer, "registerProducer"):
        return None
    drain = Drain()
    try:
        consumer.registerProducer(drain, True)
    except RuntimeError:  # another producer owns the connection
        return None
    _cap_send_buffer(transport)
    return drain


def ws_text_frame(text: str) -> bytes:
    """``text`` as one final, unmasked text frame without extensions (RFC 6455
    section 5.2): what a server sends when no compression was negotiated."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x81, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


DirectWrite = Callable[[bytes], bool]


def direct_writer(send: Callable[..., Any], drain: Drain | None) -> DirectWrite | None:
    """A writer of ``ws_text_frame`` bytes to daphne's socket behind ``send``; None
    on other servers, or without a ``drain`` to respect.

    The writer returns False, writing nothing, while the socket is paused by
    backpressure or is not a plain open socket (closing, compressed, masked,
    fragmenting or mid-message): the caller then sends through ``send`` instead.
    """
    protocol = _daphne_protocol(send)
    if drain is None or protocol is None or not hasattr(protocol, "sendMessage"):
        return None

    def write(frame: bytes) -> bool:
        if drain.paused or not _plain_open(protocol, len(frame)):
            return False
        protocol.transport.write(frame)
        return True

    return write


def _plain_open(protocol: Any, size: int) -> bool:
    # What autobahn's sendMessage would do differently from our bytes: any of these
    # and the frame goes through it instead.
    return bool(
        protocol.state == protocol.STATE_OPEN
        and protocol.send_state == protocol.SEND_STATE_GROUND
        and not protocol.send_queue
        and protocol._perMessageCompress is None
        and not protocol.maskServerFrames
        and not protocol.autoFragmentSize
        and not protocol.logFrames
        and not 0 < protocol.maxMessagePayloadSize < size
    )


# Linux grows a socket's send buffer up to 4 MiB by itself; a dashboard needs far
# less, and a capped buffer makes a stalled client push back sooner and keeps a
# thousand stalled sockets from pinning gigabytes of kernel memory.
SEND_BUFFER_BYTES = 256 * 1024


def _cap_send_buffer(transport: Any) -> None:
    handle = getattr(transport, "getHandle", None)
    if handle is None:
        return
    with contextlib.suppress(OSError):
        handle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


def close_going_away(send: Callable[..., Any]) -> bool:
    """Close daphne's socket behind ``send`` with 1001 (going away).

    ASGI's ``websocket.close`` goes through autobahn's ``sendClose``, which allows
    only 1000 and 3000-4999; 1001 is what clients treat as "reconnect elsewhere",
    so we write the close frame one level down. False when not under daphne.
    """
    protocol = _daphne_protocol(send)
    if protocol is None or not hasattr(protocol, "sendCloseFrame"):
        return False
    protocol.sendCloseFrame(code=1001, isReply=False)
    return True


def allow_slow_close(send: Callable[..., Any], *, seconds: float) -> None:
    """Give the client behind ``send`` ``seconds`` to answer our close frame.

    The frame queues behind the client's unread backlog (bounded by the drain and
    the send buffer); autobahn's default of one second would drop a client that is
    catching up before it can read why it was closed.
    """
    protocol = _daphne_protocol(send)
    if protocol is not None and hasattr(protocol, "closeHandshakeTimeout"):
        protocol.closeHandshakeTimeout = seconds


def before_server_shutdown(callback: Callable[[], Awaitable[None]]) -> bool:
    """Run ``callback`` when daphne's reactor begins to shut down, before sockets drop.

    daphne 4.2 means to cancel every application then, but its shutdown hook fails
    with a KeyError on the HTTP request entry an upgrade leaves behind, so nothing is
    cancelled and clients see 1006. False when not serving under Twisted.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or not getattr(reactor, "running", False):
        return False
    from twisted.internet import defer

    def trigger() -> Any:
        return defer.Deferred.fromFuture(asyncio.ensure_future(callback()))

    reactor.addSystemEventTrigger("before", "shutdown", trigger)
    return True
