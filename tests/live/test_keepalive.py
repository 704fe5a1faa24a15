"""Keepalive: the hub pings quiet sockets and reaps silent ones with 4410 (#8)."""

import asyncio
import json
from typing import Any

from django.conf import settings

from apps.live.connection import CLOSE_IDLE, Connection
from apps.live.hub import Hub


class Peer:
    """A socket as the connection sees it, keeping what it was sent."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed: list[int] = []
        self.changed = asyncio.Event()

    async def send_frame(self, text: str) -> None:
        self.frames.append(json.loads(text))
        self.changed.set()

    async def send_snapshot(
        self, topics: frozenset[str], reason: str
    ) -> dict[str, int]:
        return {}

    async def close_with(self, code: int) -> None:
        self.closed.append(code)
        self.changed.set()


async def _until(peer: Peer, condition: Any) -> None:
    async with asyncio.timeout(5):
        while not condition():
            peer.changed.clear()
            await peer.changed.wait()


async def test_keepalive__answered_pings_then_silence__kept_then_closed_4410():
    # Given a hub pinging every 20 s and reaping after 60 s, with two sockets
    hub = Hub(
        redis_url=settings.REDIS_URL, queue_max=16, ping_interval=20, idle_timeout=60
    )
    answering, silent = Peer(), Peer()
    conns = {}
    for peer in (answering, silent):
        conn = conns[peer] = Connection(peer, limit=16)
        conn.start()
        hub.connections.add(conn)
    t0 = max(conn.last_seen for conn in conns.values())

    # When 21 s pass, both are pinged
    hub.keepalive(t0 + 21)
    for peer in (answering, silent):
        await _until(peer, lambda p=peer: p.frames == [{"type": "ping"}])

    # And when one answers (at 30 s) and 61 s have passed, only the silent one goes
    conns[answering].last_seen = t0 + 30
    hub.keepalive(t0 + 61)
    await _until(silent, lambda: silent.closed == [CLOSE_IDLE])

    assert answering.closed == []
    assert hub.connections == {conns[answering]}
    assert hub.counts["closed_idle"] == 1
    for conn in conns.values():
        conn.stop()
