"""Deltas written straight to daphne's sockets, framed once per tick, and the
portable path through ASGI ``send`` on uvicorn (issue #8)."""

import asyncio
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from apps.core.roles import VIEWER
from apps.live import publish
from apps.live.transport import ws_text_frame
from apps.metrics.heartbeat import fleet_reports
from opsconsole.embedded import free_port, wait_for_port
from tests.factories import make_user
from tests.live.sockets import deltas, live_connect, session_cookie, subscribe
from tests.procs import Proc, child_env, daphne

COUNT = 60


def _parse(data: bytes) -> Frame:
    # The websockets library's own server-to-client frame parser.
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 300_000])
def test_ws_text_frame__payload_size__parsed_back_by_a_client_library(size):
    text = "é" * (size // 2) + "x" * (size % 2)

    frame = _parse(ws_text_frame(text))

    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert not frame.rsv1  # no compression
    assert not frame.rsv2
    assert not frame.rsv3
    assert frame.data.decode() == text


@contextmanager
def uvicorn(tmp: Path, **env: str) -> Iterator[str]:
    """Serve opsconsole.asgi with uvicorn, as the benchmark does; yields the base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "opsconsole.asgi:application"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"]
    argv += ["--ws", "websockets-sansio", "--ws-per-message-deflate", "false"]
    proc = Proc("web", argv, child_env(**env), tmp / "uvicorn.log")
    try:
        if not wait_for_port(port, timeout=30):
            raise AssertionError(f"uvicorn did not listen:\n{proc.output()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def _hub_counters(url: str) -> dict[str, Any]:
    """The server's hub counters, as it publishes them when /metrics is scraped."""
    port = int(url.rsplit(":", 1)[1])
    (pid,) = {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        assert response.status == 200
    (report,) = [r for r in fleet_reports() if r.process.endswith(f":{pid}")]
    assert report.live is not None
    return report.live


async def _deltas_in_sequence(url: str, cookie: str) -> None:
    async with live_connect(url, cookie=cookie) as ws:
        base = (await subscribe(ws, "events"))["topics"]["events"]["seq"]

        async def publish_all() -> None:
            for n in range(COUNT):
                publish("events", {"n": n}, key=str(n))
                await asyncio.sleep(0.005)  # spread over several 100 ms ticks

        publishing = asyncio.create_task(publish_all())
        items = await deltas(ws, count=COUNT, timeout=30)
        await publishing

    assert [i["seq"] for i in items] == list(range(base + 1, base + 1 + COUNT))
    assert [i["payload"]["n"] for i in items] == list(range(COUNT))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_live_socket__daphne__deltas_written_directly_in_sequence(tmp_path):
    cookie = session_cookie(make_user(role=VIEWER))
    with daphne(tmp_path, OPSCONSOLE_METRICS_PUBLIC="true") as url:
        await _deltas_in_sequence(url, cookie)
        counters = await asyncio.to_thread(_hub_counters, url)

    # Every delta frame went out pre-framed; only the snapshot took ASGI send.
    assert counters["direct"] >= 1
    assert counters["sent"] == counters["direct"] + 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_live_socket__uvicorn__deltas_through_asgi_send_in_sequence(tmp_path):
    cookie = session_cookie(make_user(role=VIEWER))
    with uvicorn(tmp_path, OPSCONSOLE_METRICS_PUBLIC="true") as url:
        await _deltas_in_sequence(url, cookie)
        counters = await asyncio.to_thread(_hub_counters, url)

    assert counters["direct"] == 0
    assert counters["sent"] >= 2
