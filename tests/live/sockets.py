"""A real WebSocket client (the ``websockets`` library) for /ws/live/ on a real daphne."""

import asyncio
import json
import socket
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def live_connect(
    base_url: str,
    *,
    cookie: str | None,
    origin: str | None = None,
    rcvbuf: int | None = None,
    max_queue: int = 1024,
) -> Any:
    """``async with live_connect(web, cookie=...) as ws`` — Origin defaults to the server's."""
    parts = urlsplit(base_url)
    sock = None
    if rcvbuf is not None:
        # A client that stops reading with a tiny receive buffer: the server's
        # socket buffers fill and its writes pile up.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.connect((parts.hostname, parts.port))
    return connect(
        f"ws://{parts.netloc}/ws/live/",
        origin=Origin(origin or base_url),
        additional_headers={"Cookie": cookie} if cookie else None,
        max_size=None,
        max_queue=max_queue,
        sock=sock,
        open_timeout=10,
    )


async def next_message(
    ws: ClientConnection, kind: str | None = None, *, timeout: float = 10
) -> dict[str, Any]:
    """The next message (of type ``kind``), skipping pings; fails after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] != "ping" and kind in (None, message["type"]):
                return message


async def subscribe(ws: ClientConnection, *topics: str) -> dict[str, Any]:
    """Subscribe and return the snapshot."""
    await ws.send(json.dumps({"type": "subscribe", "topics": list(topics)}))
    snapshot = await next_message(ws)
    assert snapshot["type"] == "snapshot", snapshot
    return snapshot


async def deltas(
    ws: ClientConnection, *, count: int, timeout: float = 10
) -> list[dict[str, Any]]:
    """The next ``count`` delta items; fails on any other message but status/ping."""
    items: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(items) < count:
            message = await next_message(ws, timeout=timeout)
            assert message["type"] == "deltas", message
            items.extend(message["items"])
    return items
