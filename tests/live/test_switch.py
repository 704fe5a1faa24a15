"""The console switch opsconsole.live.enabled pauses streaming on every socket and a
resume resyncs them (issue #4 item 12, issue #8)."""

import pytest

from apps.core.models import AuditEvent
from apps.core.roles import VIEWER
from apps.flags.services import flag_toggle
from tests.factories import make_user
from tests.live.sockets import live_connect, next_message, session_cookie, subscribe

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _switch(enabled: bool) -> None:
    flag_toggle(
        key="opsconsole.live.enabled",
        enabled=enabled,
        actor=None,
        reason="test",
        source=AuditEvent.Source.SYSTEM,
    )


async def test_live_socket__switched_off_then_on__paused_then_resynced(web):
    cookie = session_cookie(make_user(role=VIEWER))
    async with live_connect(web, cookie=cookie) as ws:
        await subscribe(ws, "events")

        _switch(False)
        paused = await next_message(ws, "status", timeout=15)

        _switch(True)
        seen = [await next_message(ws, timeout=15) for _ in range(2)]

    assert paused == {"type": "status", "paused": True}
    kinds = sorted((m["type"], m.get("reason") or m.get("paused")) for m in seen)
    assert kinds == [("snapshot", "resumed"), ("status", False)]
