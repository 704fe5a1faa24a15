"""TLS certificate expiry: degraded under ``degraded_days`` left, unhealthy once expired.

With ``verify`` (the default) an untrusted or expired certificate already fails the
handshake: unhealthy, with the reason.
"""

import asyncio
import ssl
from datetime import UTC, datetime

from cryptography import x509
from pydantic import Field

from apps.components.checkers.base import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    CheckConfig,
    CheckerKind,
    CheckOutcome,
    Stopwatch,
)


class Config(CheckConfig):
    host: str
    port: int = Field(443, ge=1, le=65535)
    # The name to ask for (SNI) and verify; default: host.
    server_name: str | None = None
    degraded_days: int = Field(14, ge=0)
    verify: bool = True


async def check(config: Config, timeout: float) -> CheckOutcome:
    context = ssl.create_default_context()
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    watch = Stopwatch()
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(
            config.host,
            config.port,
            ssl=context,
            server_hostname=config.server_name or config.host,
        ),
        timeout,
    )
    latency = watch.ms()
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return _expiry(x509.load_der_x509_certificate(der), config.degraded_days, latency)


def _expiry(cert: x509.Certificate, degraded_days: int, latency: float) -> CheckOutcome:
    expires = cert.not_valid_after_utc
    days = (expires - datetime.now(UTC)).total_seconds() / 86400
    details = {"not_after": expires.isoformat(), "days_left": round(days, 2)}
    if days < 0:
        return CheckOutcome(UNHEALTHY, latency, f"expired {expires:%Y-%m-%d}", details)
    status = DEGRADED if days < degraded_days else HEALTHY
    return CheckOutcome(status, latency, f"expires in {days:.0f} days", details)


KIND = CheckerKind("tls", Config, check)
