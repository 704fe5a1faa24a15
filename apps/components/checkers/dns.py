"""DNS: a name resolves, and (optionally) to the expected records."""

from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.resolver
from pydantic import Field

from apps.components.checkers.base import (
    HEALTHY,
    UNHEALTHY,
    CheckConfig,
    CheckerKind,
    CheckOutcome,
    Stopwatch,
)


class Config(CheckConfig):
    name: str = Field(min_length=1, max_length=253)
    record_type: Literal["A", "AAAA", "CNAME", "MX", "NS", "TXT", "SRV"] = "A"
    # Each must be among the answers (as dnspython writes them: "10 mx.example.").
    expected: list[str] = []
    # Ask this server instead of the system's resolvers.
    nameserver: str | None = None
    port: int = Field(53, ge=1, le=65535)


async def check(config: Config, timeout: float) -> CheckOutcome:
    resolver = dns.asyncresolver.Resolver(configure=config.nameserver is None)
    if config.nameserver is not None:
        resolver.nameservers = [config.nameserver]
        resolver.port = config.port
    resolver.lifetime = timeout
    watch = Stopwatch()
    try:
        answer = await resolver.resolve(config.name, config.record_type)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as exc:
        return CheckOutcome(UNHEALTHY, watch.ms(), str(exc)[:500])
    latency = watch.ms()
    records = sorted(record.to_text() for record in answer)
    missing = [value for value in config.expected if value not in records]
    details = {"records": records}
    if missing:
        return CheckOutcome(
            UNHEALTHY, latency, f"expected record(s) missing: {missing}", details
        )
    return CheckOutcome(
        HEALTHY, latency, f"{config.name} {config.record_type}: {len(records)}", details
    )


KIND = CheckerKind("dns", Config, check)
