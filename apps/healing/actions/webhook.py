"""Webhook: an HMAC-signed JSON POST; the answer's status says whether it worked.

The receiver checks ``X-Opsconsole-Signature: sha256=<hex>``, the HMAC-SHA256 of
``<X-Opsconsole-Timestamp>.<body>`` with the shared secret (GitHub/Stripe style).
"""

import hmac
import json
import time

import aiohttp
from pydantic import Field

from apps.components.checkers.base import secret
from apps.healing.actions.base import (
    ActionConfig,
    ActionKind,
    ActionResult,
    HealContext,
    excerpt,
)


class Config(ActionConfig):
    url: str = Field(pattern=r"^https?://")
    secret: str = secret(min_length=16)
    expected_status: list[int] = Field(default=[200, 202, 204], min_length=1)


def signature(secret_key: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret_key.encode(), timestamp.encode() + b"." + body, "sha256")
    return f"sha256={mac.hexdigest()}"


async def run(config: Config, ctx: HealContext) -> ActionResult:
    body = json.dumps(
        {
            "component": ctx.slug,
            "attempt": ctx.attempt,
            "reason": ctx.reason,
            "trace_id": ctx.trace_id,
        }
    ).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Opsconsole-Timestamp": timestamp,
        "X-Opsconsole-Signature": signature(config.secret, timestamp, body),
    }
    limit = aiohttp.ClientTimeout(total=ctx.timeout)
    async with (
        aiohttp.ClientSession(timeout=limit) as session,
        session.post(config.url, data=body, headers=headers) as response,
    ):
        text = await response.text(errors="replace")
    ok = response.status in config.expected_status
    return ActionResult(ok, excerpt(f"HTTP {response.status}\n{text}"))


def describe(config: Config) -> str:
    return f"POST {config.url} (signed)"


KIND = ActionKind("webhook", Config, run, describe)
