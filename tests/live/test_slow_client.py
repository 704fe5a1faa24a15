"""A stalled client is resynced/closed while the others get every delta; a stopping
web process closes its sockets with 1001 (issue #8)."""

import asyncio
import json
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed

from apps.core.roles import VIEWER
from apps.live import publish
from tests.factories import make_user
from tests.live.sockets import deltas, live_connect, session_cookie, subscribe
from tests.procs import daphne

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

COUNT = 240
BLOB = "x" * 64 * 1024


async def drain_slow(ws) -> tuple[list[str], int | None]:
    """What the stalled client finally reads: message types, then the close code."""
    kinds: list[str] = []
    try:
        async with asyncio.timeout(30):
            async for raw in ws:
                message = json.loads(raw)
                kinds.append(message.get("reason") or message["type"])
    except ConnectionClosed:
        pass
    return kinds, ws.close_code


async def test_live_socket__stalled_client__closed_4408_others_get_every_delta(
    tmp_path,
):
    cookie = session_cookie(make_user(role=VIEWER))
    with daphne(tmp_path, OPSCONSOLE_LIVE_QUEUE_MAX="4") as url:
        async with (
            live_connect(url, cookie=cookie) as normal,
            live_connect(url, cookie=cookie, rcvbuf=4096, max_queue=1) as stalled,
        ):
            base = (await subscribe(normal, "events"))["topics"]["events"]["seq"]
            await subscribe(stalled, "events")

            async def publish_all() -> None:
                for n in range(COUNT):
                    publish("events", {"n": n, "blob": BLOB}, key=str(n))
                    await asyncio.sleep(0.005)  # spread over many 100 ms ticks

            publishing = asyncio.create_task(publish_all())
            items = await deltas(normal, count=COUNT, timeout=60)
            await publishing
            kinds, code = await drain_slow(stalled)
            normal_open = normal.close_code is None

    assert [i["seq"] for i in items] == list(range(base + 1, base + 1 + COUNT))
    assert code == 4408, (kinds[-5:], code)
    assert kinds.count("deltas") < COUNT
    assert normal_open


async def test_live_socket__web_process_stops__clients_closed_1001(tmp_path):
    cookie = session_cookie(make_user(role=VIEWER))
    with ExitStack() as server:
        url = server.enter_context(daphne(tmp_path))
        async with live_connect(url, cookie=cookie) as ws:
            await subscribe(ws, "events")
            # Stop daphne (SIGTERM) off the loop so this client can read the close.
            await asyncio.to_thread(server.close)
            await asyncio.wait_for(ws.wait_closed(), timeout=15)

    assert ws.close_code == 1001
