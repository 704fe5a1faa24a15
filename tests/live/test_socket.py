"""/ws/live/ over a real daphne with a real WebSocket client (issue #8)."""

import json

import pytest
import redis
from django.conf import settings
from websockets.exceptions import InvalidStatus

from apps.core.roles import VIEWER
from apps.live import publish
from apps.live.publisher import seq_key
from tests.factories import make_user
from tests.live.sockets import (
    deltas,
    live_connect,
    next_message,
    session_cookie,
    subscribe,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def viewer_cookie() -> str:
    return session_cookie(make_user(role=VIEWER))


async def test_live_socket__viewer_subscribes__snapshot_then_deltas_in_sequence(
    web, viewer_cookie
):
    async with live_connect(web, cookie=viewer_cookie) as ws:
        snapshot = await subscribe(ws, "flags", "events")
        assert snapshot["reason"] == "subscribe"
        assert set(snapshot["topics"]) == {"flags", "events"}
        assert "data" in snapshot["topics"]["flags"]
        base = snapshot["topics"]["flags"]["seq"]

        for n in range(5):
            publish("flags", {"key": "f", "n": n}, key="f")
        items = await deltas(ws, count=5)

    assert [i["seq"] for i in items] == [base + 1 + n for n in range(5)]
    assert [i["payload"]["n"] for i in items] == list(range(5))
    assert {i["topic"] for i in items} == {"flags"}


async def test_live_socket__seq_gap__resync_gives_fresh_snapshot(web, viewer_cookie):
    async with live_connect(web, cookie=viewer_cookie) as ws:
        base = (await subscribe(ws, "components"))["topics"]["components"]["seq"]
        # Given a message the client never sees (its seq is taken, nothing published)
        redis.Redis.from_url(settings.REDIS_URL).incr(seq_key("components"))
        publish("components", {"slug": "db"}, key="db")
        (item,) = await deltas(ws, count=1)
        assert item["seq"] == base + 2  # a gap: base + 1 is missing
        # When the client asks for a resync
        await ws.send(json.dumps({"type": "resync"}))
        snapshot = await next_message(ws, "snapshot")
        # Then the snapshot covers the gap and deltas continue after it
        assert snapshot["reason"] == "requested"
        assert snapshot["topics"]["components"]["seq"] == base + 2
        publish("components", {"slug": "db"}, key="db")
        (after,) = await deltas(ws, count=1)
    assert after["seq"] == base + 3


async def test_live_socket__unknown_topic__error_and_socket_stays(web, viewer_cookie):
    async with live_connect(web, cookie=viewer_cookie) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["flags", "nope"]}))
        error = await next_message(ws)
        await ws.send("not json")
        not_json = await next_message(ws)
        snapshot = await subscribe(ws, "flags")
    assert error == {"type": "error", "detail": "unknown topic", "topics": ["nope"]}
    assert not_json["type"] == "error"
    assert list(snapshot["topics"]) == ["flags"]


async def test_live_socket__viewer_sends_actions__refused_and_data_keeps_coming(
    web, viewer_cookie
):
    # The socket is read-only for everyone: actions go through the admin and API,
    # which check the operator role.
    actions = [
        {"type": "flag.toggle", "key": "f", "enabled": False},
        {"type": "breaker.force_open", "name": "payments"},
        {"type": "heal", "component": "db"},
    ]
    async with live_connect(web, cookie=viewer_cookie) as ws:
        snapshot = await subscribe(ws, "flags")
        replies = []
        for action in actions:
            await ws.send(json.dumps(action))
            replies.append(await next_message(ws))
        publish("flags", {"key": "f", "n": 1}, key="f")
        (item,) = await deltas(ws, count=1)
    assert replies == [{"type": "error", "detail": "unknown message type"}] * 3
    assert item["seq"] == snapshot["topics"]["flags"]["seq"] + 1


async def test_live_socket__anonymous__handshake_refused(web):
    with pytest.raises(InvalidStatus) as refused:
        async with live_connect(web, cookie=None):
            pass
    assert refused.value.response.status_code == 403


async def test_live_socket__foreign_origin__handshake_refused(web, viewer_cookie):
    with pytest.raises(InvalidStatus) as refused:
        async with live_connect(
            web, cookie=viewer_cookie, origin="https://evil.example"
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_live_socket__50_publishes_of_one_queue_key__coalesced_to_last(
    web, viewer_cookie
):
    async with live_connect(web, cookie=viewer_cookie) as ws:
        await subscribe(ws, "queues")
        for depth in range(50):
            publish("queues", {"queue": "default", "depth": depth}, key="default")
        items = []
        while not items or items[-1]["payload"]["depth"] != 49:
            items.extend(await deltas(ws, count=1))
    # 50 publishes take a few ms here: they land in one or two 100 ms ticks.
    assert len(items) <= 3
    assert items[-1]["payload"] == {"queue": "default", "depth": 49}
    assert [i["seq"] for i in items] == sorted(i["seq"] for i in items)
