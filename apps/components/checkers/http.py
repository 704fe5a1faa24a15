"""HTTP(S): status set, body keyword or JSON path expectation, latency for degraded."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

import aiohttp
from pydantic import Field, field_validator

from apps.components.checkers.base import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    CheckConfig,
    CheckerKind,
    CheckOutcome,
    Stopwatch,
    secret,
)

_MISSING = object()
# The runner binds one session per process (see ``session_bound``): a session per
# check would cost a connector, DNS cache and new connections each time.
_session: ContextVar[aiohttp.ClientSession | None] = ContextVar(
    "http_session", default=None
)


class Config(CheckConfig):
    url: str
    method: Literal["GET", "HEAD", "POST", "OPTIONS"] = "GET"
    expected_status: list[int] = Field(default=[200], min_length=1)
    body_contains: str | None = None
    # Dotted path into a JSON body, list items by index: "checks.0.status".
    json_path: str | None = None
    json_equals: Any = None
    degraded_latency_ms: float | None = Field(default=None, gt=0)
    verify_tls: bool = True
    headers: dict[str, str] = secret(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url


def session_new() -> aiohttp.ClientSession:
    """A client session for HTTP checks (call inside a running event loop)."""
    # Per host, as many connections as a target is asked to bear at once by
    # one process; across hosts, no limit.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=50, ttl_dns_cache=60)
    return aiohttp.ClientSession(connector=connector)


@contextmanager
def session_bound(session: aiohttp.ClientSession) -> Iterator[None]:
    """Share ``session`` among the HTTP checks run inside this scope."""
    token = _session.set(session)
    try:
        yield
    finally:
        _session.reset(token)


async def check(config: Config, timeout: float) -> CheckOutcome:
    session = _session.get()
    if session is None:
        async with session_new() as own:
            with session_bound(own):
                return await check(config, timeout)
    watch = Stopwatch()
    async with session.request(
        config.method,
        config.url,
        headers=config.headers,
        ssl=config.verify_tls,
        timeout=aiohttp.ClientTimeout(total=timeout),
        allow_redirects=False,
    ) as response:
        body = await response.read()
    latency = watch.ms()
    details = {"status_code": response.status}
    problem = _problem(config, response.status, body)
    if problem:
        return CheckOutcome(UNHEALTHY, latency, problem, details)
    if config.degraded_latency_ms is not None and latency > config.degraded_latency_ms:
        message = f"slow: {latency:.0f} ms > {config.degraded_latency_ms:.0f} ms"
        return CheckOutcome(DEGRADED, latency, message, details)
    return CheckOutcome(HEALTHY, latency, f"HTTP {response.status}", details)


def _problem(config: Config, status: int, body: bytes) -> str:
    if status not in config.expected_status:
        return f"HTTP {status}, expected {config.expected_status}"
    text = body.decode(errors="replace")
    if config.body_contains is not None and config.body_contains not in text:
        return f"body lacks {config.body_contains!r}"
    if config.json_path is not None:
        return _json_problem(config.json_path, config.json_equals, text)
    return ""


def _json_problem(path: str, expected: Any, text: str) -> str:
    import json

    try:
        value: Any = json.loads(text)
    except ValueError:
        return "body is not JSON"
    for part in path.split("."):
        value = _step(value, part)
        if value is _MISSING:
            return f"JSON path {path!r} not found"
    if expected is not None and value != expected:
        return f"JSON {path!r} is {value!r}, expected {expected!r}"
    return ""


def _step(value: Any, part: str) -> Any:
    if isinstance(value, dict):
        return value.get(part, _MISSING)
    if isinstance(value, list) and part.isdigit() and int(part) < len(value):
        return value[int(part)]
    return _MISSING


KIND = CheckerKind("http", Config, check)
