"""Test helpers for healing: a recording webhook receiver, a Python action, data."""

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from apps import healing
from apps.components.models import Component, ComponentState
from apps.core.models import AuditEvent
from apps.healing.models import HealingPolicy
from apps.healing.services import policy_save

SECRET = "s3cr3t-webhook-key-0123456789"
calls: list[dict[str, Any]] = []
# Set by a test to hold the "tests.record" action until the test lets it go.
gate: dict[str, threading.Event] = {}


@healing.action("tests.record")
def record(ctx: healing.HealContext, ok: bool = True) -> healing.ActionResult:
    """Counts its calls; waits on ``gate`` while a test holds it."""
    calls.append({"slug": ctx.slug, "attempt": ctx.attempt})
    if "started" in gate:
        gate["started"].set()
        gate["release"].wait(20)
    return healing.ActionResult(ok, "recorded")


@dataclass
class Receiver:
    """A webhook receiver: the requests it got, the status it answers.

    ``statuses`` and ``delays`` script the first requests' answers, in order, before
    ``status`` and ``delay``; ``max_in_flight`` is the most requests it ever held
    at once (a second heal overlapping the first makes it 2).
    """

    status: int = 200
    delay: float = 0.0
    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    on_request: Callable[[], None] | None = None
    base_url: str = ""
    in_flight: int = 0
    max_in_flight: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.received.append((dict(request.headers), await request.read()))
            status = self.statuses.pop(0) if self.statuses else self.status
            if self.on_request is not None:
                self.on_request()
            await asyncio.sleep(self.delays.pop(0) if self.delays else self.delay)
            return web.Response(status=status, text="ok")
        finally:
            self.in_flight -= 1

    def url(self, path: str = "/heal") -> str:
        return self.base_url + path


@contextmanager
def receiver() -> Iterator[Receiver]:
    """Serve a Receiver on a free local port from a thread of the test process."""
    made = Receiver()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", made.handle)
    runner = web.AppRunner(app)

    async def start() -> int:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return int(runner.addresses[0][1])

    made.base_url = (
        f"http://127.0.0.1:{asyncio.run_coroutine_threadsafe(start(), loop).result(10)}"
    )
    try:
        yield made
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def make_policy(component: Component, **data: Any) -> HealingPolicy:
    """A policy made through ``policy_save``: the recording action unless given."""
    data.setdefault("action", "python")
    data.setdefault("config", {"name": "tests.record"})
    return policy_save(
        slug=component.slug, data=data, actor=None, source=AuditEvent.Source.SYSTEM
    )


def set_unhealthy(component: Component, at: datetime) -> None:
    """Put the component in the state a failing streak leaves it in."""
    ComponentState.objects.filter(component=component).update(
        state="unhealthy", last_status="unhealthy", since=at, last_message="down"
    )
