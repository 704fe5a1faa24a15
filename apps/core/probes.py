"""``/livez`` and ``/readyz``: unauthenticated by design, for orchestrators and load balancers.

``/readyz`` checks PostgreSQL and Redis concurrently, each on a fresh connection with a
short timeout, so a hung dependency answers 503 in about a second instead of hanging
the probe or tying up the request pool.
"""

import asyncio
import time
from dataclasses import asdict, dataclass

import psycopg
import redis.asyncio as aioredis
from django.conf import settings
from django.db.utils import ConnectionHandler
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.breakers.selectors import breakers_readiness
from apps.flags.snapshot import readiness as flags_readiness


@dataclass(frozen=True, slots=True)
class ProbeResult:
    status: str
    latency_ms: float
    error: str = ""


def _describe(exc: BaseException) -> str:
    """One line naming the failure, without connection strings."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:200]


async def _timed(check: "asyncio.Future[None] | asyncio.Task[None]") -> ProbeResult:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check, settings.OPSCONSOLE_PROBE_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return ProbeResult("fail", _elapsed(started), _describe(exc))
    return ProbeResult("pass", _elapsed(started))


def _elapsed(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def _check_postgres() -> None:
    # A fresh connection built from the settings, outside Django's per-thread
    # connections and pool: a probe must not queue behind, or exhaust, the pool.
    wrapper = ConnectionHandler(settings.DATABASES).create_connection("default")
    params = wrapper.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["connect_timeout"] = max(1, round(settings.OPSCONSOLE_PROBE_TIMEOUT))
    conn = await psycopg.AsyncConnection.connect(**params)
    async with conn:
        await conn.execute("SELECT 1")


async def _check_redis() -> None:
    timeout = settings.OPSCONSOLE_PROBE_TIMEOUT
    client = aioredis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


@never_cache
@require_GET
async def livez(request: HttpRequest) -> JsonResponse:
    """The process is up and serving; no dependency is called."""
    return JsonResponse({"status": "pass"})


@never_cache
@require_GET
async def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when PostgreSQL and Redis both answer; 503 names what failed."""
    postgres, redis_result = await asyncio.gather(
        _timed(asyncio.ensure_future(_check_postgres())),
        _timed(asyncio.ensure_future(_check_redis())),
    )
    checks = {"postgresql": asdict(postgres), "redis": asdict(redis_result)}
    failed = [name for name, result in checks.items() if result["status"] != "pass"]
    checks["flags"] = flags_readiness()  # degraded flags warn, never fail
    checks["breakers"] = breakers_readiness()  # local-only breakers warn too
    body = {"status": "fail" if failed else "pass", "failed": failed, "checks": checks}
    return JsonResponse(body, status=503 if failed else 200)
