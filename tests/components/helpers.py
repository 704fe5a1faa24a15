"""Test helpers for components: a controllable HTTP target and component factories."""

import asyncio
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from django.db import connection

from apps.components.models import Component, HealthResult
from apps.components.selectors import CHECK_LATENCY_METRIC, CHECK_UP_METRIC
from apps.components.services import component_create
from apps.core.models import AuditEvent
from apps.metrics.buffer import sample_row
from apps.metrics.db import default_database
from apps.metrics.models import Resolution
from apps.metrics.partitions import partitions_create
from apps.metrics.rollups import rollup_due
from apps.metrics.storage import SampleWriter

_numbers = itertools.count(1)


@dataclass(frozen=True)
class Received:
    """One request the target answered, and the status it answered with."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    # When it arrived (epoch seconds) and from which client port (its connection).
    at: float = 0.0
    port: int = 0


class Target:
    """An HTTP server in a thread of the test process; change its answers any time.

    ``answers[path]`` lists statuses to give that path first, in order, before
    ``status``; ``received`` keeps every request.
    """

    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self.body: Any = {"status": "ok", "checks": [{"ok": True}]}
        self.hits: Counter[str] = Counter()
        self.answers: dict[str, list[int]] = {}
        self.received: list[Received] = []
        self.base_url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        scripted = self.answers.get(request.path)
        status = scripted.pop(0) if scripted else self.status
        body = await request.read()
        peer = (
            request.transport.get_extra_info("peername") if request.transport else None
        )
        self.received.append(
            Received(
                request.path,
                dict(request.headers),
                body,
                status,
                at=time.time(),
                port=peer[1] if peer else 0,
            )
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(
            status=status,
            text=json.dumps(self.body),
            content_type="application/json",
        )

    def url(self, path: str = "/") -> str:
        return self.base_url + path


@contextmanager
def http_target() -> Iterator[Target]:
    target = Target()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", target.handle)
    runner = web.AppRunner(app)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    target.base_url = f"http://127.0.0.1:{port}"
    try:
        yield target
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def make_component(
    *,
    kind: str = "http",
    config: dict[str, Any] | None = None,
    slug: str | None = None,
    **options: Any,
) -> Component:
    """A component made through ``component_create``, checking ``config``."""
    number = next(_numbers)
    return component_create(
        name=f"Component {number}",
        slug=slug or f"component-{number}",
        kind=kind,
        config=config if config is not None else {"url": "http://127.0.0.1:9/"},
        actor=None,
        source=AuditEvent.Source.SYSTEM,
        **options,
    )


def checks_rolled(results: list[HealthResult]) -> None:
    """``results`` as the samples their checks record (stamped at ``checked_at``,
    which ``record()`` itself does not do), written in this test's transaction and
    rolled up to minutes, hours and days (today's too).

    For tests that need checks in past hours and days: recording stamps a sample
    with the time it is recorded, so only the raw writer can place one earlier.
    """
    # Every day a test reaches, before this transaction marks any minute pending:
    # a partition created later (its lock on metrics_sample, held to the end of
    # the test) while holding pending rows the process persister's COPY also
    # inserts would deadlock with it.
    today = datetime.now(UTC).date()
    partitions_create(days=[today + timedelta(days=d) for d in range(-7, 2)])
    rows = []
    for result in results:
        tags = (("component", result.component.slug),)
        up = 0.0 if result.status == "unhealthy" else 1.0
        rows.append(sample_row(CHECK_UP_METRIC, tags, result.checked_at, up))
        latency = result.latency_ms
        rows.append(sample_row(CHECK_LATENCY_METRIC, tags, result.checked_at, latency))
    SampleWriter(database=default_database).write(rows)
    rolls_closed(datetime.now(UTC) + timedelta(days=2))


# Raw samples of the minutes due whose series are gone: a transactional test's
# flush removed the series, not the samples (the partitioned table is not
# flushed), and rolling such a minute again would break the rollup's foreign key.
_ORPHANS_DELETE = """
DELETE FROM metrics_sample m USING metrics_pendingrollup p
WHERE p.resolution = 'minute' AND m.at >= p.bucket_start
  AND m.at < p.bucket_start + interval '1 minute'
  AND NOT EXISTS (SELECT 1 FROM metrics_series s WHERE s.id = m.series_id)
"""


@contextmanager
def samples_forgotten() -> Iterator[None]:
    """For a transactional test that records through the persister: the raw
    samples of the series made meanwhile are deleted at its end, since its flush
    removes their series, not them (the partitioned table is not flushed)."""
    started = datetime.now(UTC)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM metrics_sample WHERE series_id IN"
                " (SELECT id FROM metrics_series WHERE created_at >= %s)",
                [started],
            )


def rolls_closed(now: datetime) -> None:
    """Every rollup due and closed at ``now``: minutes, then hours, then days
    (after deleting the orphaned samples of earlier tests in those minutes)."""
    with connection.cursor() as cursor:
        cursor.execute(_ORPHANS_DELETE)
    for resolution in (Resolution.MINUTE, Resolution.HOUR, Resolution.DAY):
        rollup_due(resolution=resolution, now=now, grace=timedelta(0))
