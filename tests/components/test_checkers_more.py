"""DNS, TLS expiry and Celery queue depth checkers against real local servers."""

import asyncio

import pytest
import redis
from django.conf import settings

from apps.components.checkers.runner import CheckJob, run_job
from apps.live.services import broker_prefix
from tests.components.servers import dns_server, self_signed, tls_server


async def _run(kind: str, config: dict, *, timeout: float = 3.0):
    return await run_job(CheckJob(1, kind, config, timeout, 0))


RECORDS = {
    ("svc.test.", "A"): ["10.0.0.1", "10.0.0.2"],
    ("svc.test.", "MX"): ["10 mx.svc.test."],
}


@pytest.fixture
def nameserver():
    with dns_server(RECORDS) as port:
        yield {"nameserver": "127.0.0.1", "port": port}


async def test_dns__expected_records_present__healthy(nameserver):
    config = {"name": "svc.test", "expected": ["10.0.0.2"], **nameserver}
    outcome = await _run("dns", config)
    assert outcome.status == "healthy"
    assert outcome.details["records"] == ["10.0.0.1", "10.0.0.2"]


async def test_dns__expected_record_missing__unhealthy(nameserver):
    config = {"name": "svc.test", "expected": ["10.0.0.9"], **nameserver}
    outcome = await _run("dns", config)
    assert outcome.status == "unhealthy"
    assert "10.0.0.9" in outcome.message


async def test_dns__mx_record__matched_as_text(nameserver):
    config = {
        "name": "svc.test",
        "record_type": "MX",
        "expected": ["10 mx.svc.test."],
        **nameserver,
    }
    assert (await _run("dns", config)).status == "healthy"


async def test_dns__unknown_name__unhealthy(nameserver):
    outcome = await _run("dns", {"name": "nope.test", **nameserver})
    assert outcome.status == "unhealthy"
    assert "does not exist" in outcome.message


async def test_dns__nothing_answers__unhealthy():
    # Nothing listens on port 9 (discard): refused or timed out, never an answer.
    config = {"name": "svc.test", "nameserver": "127.0.0.1", "port": 9}
    outcome = await _run("dns", config, timeout=0.5)
    assert outcome.status == "unhealthy"


@pytest.mark.parametrize(
    ("days", "expected"), [(60, "healthy"), (5, "degraded"), (-1, "unhealthy")]
)
async def test_tls__certificate_days_left__status_by_threshold(
    tmp_path, days, expected
):
    cert, key = self_signed(tmp_path, days=days)
    with tls_server(cert, key) as port:
        config = {"host": "127.0.0.1", "port": port, "verify": False}
        outcome = await _run("tls", {**config, "degraded_days": 14})
    assert outcome.status == expected
    assert round(outcome.details["days_left"]) == days


async def test_tls__untrusted_with_verify__unhealthy_with_reason(tmp_path):
    cert, key = self_signed(tmp_path, days=60)
    with tls_server(cert, key) as port:
        outcome = await _run("tls", {"host": "localhost", "port": port})
    assert outcome.status == "unhealthy"
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.message


QUEUE = "components-test-depth"


@pytest.fixture
def queue():
    """A queue declared on the broker as kombu does, emptied afterwards."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = broker_prefix()
    binding = f"{prefix}_kombu.binding.{QUEUE}"
    client.sadd(binding, f"{QUEUE}\x06\x16\x06\x16{QUEUE}")

    def fill(count: int) -> None:
        client.delete(f"{prefix}{QUEUE}")
        if count:
            client.rpush(f"{prefix}{QUEUE}", *(["{}"] * count))

    yield fill
    client.delete(binding, f"{prefix}{QUEUE}")
    client.close()


@pytest.mark.parametrize(
    ("depth", "expected"), [(2, "healthy"), (6, "degraded"), (11, "unhealthy")]
)
def test_celery_queue__depth__status_by_thresholds(queue, depth, expected):
    queue(depth)
    config = {"queue": QUEUE, "degraded_above": 5, "unhealthy_above": 10}
    outcome = asyncio.run(_run("celery_queue", config))
    assert outcome.status == expected
    assert outcome.details == {"queue": QUEUE, "depth": depth}


def test_celery_queue__undeclared_queue__healthy_empty():
    config = {"queue": "never-declared-queue", "unhealthy_above": 0}
    outcome = asyncio.run(_run("celery_queue", config))
    assert (outcome.status, outcome.details["depth"]) == ("healthy", 0)


@pytest.mark.parametrize(
    "config",
    [{"queue": "q"}, {"queue": "q", "degraded_above": 10, "unhealthy_above": 5}],
)
async def test_celery_queue__bad_thresholds__invalid_config(config):
    outcome = await _run("celery_queue", config)
    assert outcome.status == "unhealthy"
    assert outcome.message.startswith("invalid config")
