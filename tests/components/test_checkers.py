"""Each checker against a real local target."""

import asyncio
import sys

import pytest
from django.conf import settings
from django.db import connection

from apps.components import checker
from apps.components.checkers.base import CheckOutcome
from apps.components.checkers.runner import CheckJob, run_job
from opsconsole.embedded import free_port
from tests.procs import pid_alive


async def _run(kind: str, config: dict, *, timeout: float = 3.0, retries: int = 0):
    return await run_job(CheckJob(1, kind, config, timeout, retries))


async def test_http__expected_status__healthy(target):
    outcome = await _run("http", {"url": target.url("/ok")})
    assert outcome.status == "healthy"
    assert outcome.details["status_code"] == 200
    assert outcome.latency_ms > 0


async def test_http__unexpected_status__unhealthy(target):
    target.status = 503
    outcome = await _run("http", {"url": target.url(), "expected_status": [200, 204]})
    assert outcome.status == "unhealthy"
    assert "503" in outcome.message


async def test_http__body_keyword_missing__unhealthy(target):
    outcome = await _run("http", {"url": target.url(), "body_contains": "nope"})
    assert outcome.status == "unhealthy"


async def test_http__json_path_matches__healthy(target):
    config = {"url": target.url(), "json_path": "checks.0.ok", "json_equals": True}
    assert (await _run("http", config)).status == "healthy"


async def test_http__json_path_differs__unhealthy(target):
    config = {"url": target.url(), "json_path": "status", "json_equals": "down"}
    outcome = await _run("http", config)
    assert outcome.status == "unhealthy"
    assert "expected 'down'" in outcome.message


async def test_http__slower_than_threshold__degraded(target):
    target.delay = 0.05
    config = {"url": target.url(), "degraded_latency_ms": 10}
    assert (await _run("http", config)).status == "degraded"


async def test_http__slower_than_timeout__unhealthy_timed_out(target):
    target.delay = 1.0
    outcome = await _run("http", {"url": target.url()}, timeout=0.2)
    assert outcome.status == "unhealthy"
    assert "timed out" in outcome.message


async def test_http__fails_then_retried__attempts_counted(target):
    target.status = 500
    outcome = await _run("http", {"url": target.url("/r")}, retries=2)
    assert outcome.status == "unhealthy"
    assert target.hits["/r"] == 3


async def test_http__invalid_config__unhealthy_without_request():
    outcome = await _run("http", {"url": "ftp://x", "bogus": 1})
    assert outcome.status == "unhealthy"
    assert outcome.message.startswith("invalid config")


async def test_tcp__listening_port__healthy(target):
    port = int(target.base_url.rsplit(":", 1)[1])
    outcome = await _run("tcp", {"host": "127.0.0.1", "port": port})
    assert outcome.status == "healthy"


async def test_tcp__closed_port__unhealthy():
    outcome = await _run("tcp", {"host": "127.0.0.1", "port": free_port()})
    assert outcome.status == "unhealthy"
    assert "ConnectionRefused" in outcome.message


@pytest.mark.django_db
async def test_postgres__console_database_with_query__healthy():
    config = {"use_console_database": True, "query": "SELECT 41 + 1"}
    outcome = await _run("postgres", config)
    assert outcome.status == "healthy", outcome.message
    assert outcome.details == {"first_value": "42"}


async def test_postgres__wrong_port__unhealthy():
    dsn = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    assert (await _run("postgres", {"dsn": dsn})).status == "unhealthy"


@pytest.mark.django_db
def test_postgres__dsn_of_session_server__healthy():
    params = connection.settings_dict
    dsn = f"postgresql://{params['USER']}@{params['HOST']}:{params['PORT']}/{params['NAME']}"
    assert asyncio.run(_run("postgres", {"dsn": dsn})).status == "healthy"


async def test_redis__console_redis__healthy():
    assert (await _run("redis", {"use_console_redis": True})).status == "healthy"


async def test_redis__key_missing__unhealthy():
    config = {"url": settings.REDIS_URL, "key": "opstest:components:absent"}
    outcome = await _run("redis", config)
    assert outcome.status == "unhealthy"
    assert "missing" in outcome.message


async def test_redis__closed_port__unhealthy():
    config = {"url": f"redis://127.0.0.1:{free_port()}/0"}
    assert (await _run("redis", config)).status == "unhealthy"


async def test_command__true__healthy():
    outcome = await _run("command", {"argv": ["/bin/true"]})
    assert outcome.status == "healthy"
    assert outcome.details["exit_code"] == 0


async def test_command__false__unhealthy():
    outcome = await _run("command", {"argv": ["/bin/false"]})
    assert outcome.status == "unhealthy"
    assert outcome.details["exit_code"] == 1


async def test_command__shell_syntax__not_interpreted():
    config = {
        "argv": [sys.executable, "-c", "import sys; print(sys.argv[1])", "$HOME;x"]
    }
    outcome = await _run("command", config)
    assert outcome.details["output"].strip() == "$HOME;x"


async def test_command__runs_too_long__killed_unhealthy(tmp_path):
    pid_file = tmp_path / "pid"
    argv = ["/bin/sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"]

    outcome = await _run("command", {"argv": argv}, timeout=0.3)

    assert outcome.status == "unhealthy"
    assert "timed out" in outcome.message
    assert not pid_alive(int(pid_file.read_text()))


async def test_celery_workers__none_on_queue__unhealthy():
    # A queue no worker consumes: a session worker may be running by now.
    config = {"min_workers": 1, "queue": "nobody-consumes-this"}
    outcome = await _run("celery_workers", config, timeout=1.0)
    assert outcome.status == "unhealthy"
    assert outcome.details == {"workers": []}


@pytest.mark.slow
def test_celery_workers__session_worker__healthy(worker):
    outcome = asyncio.run(_run("celery_workers", {"min_workers": 1}, timeout=2.0))
    assert outcome.status == "healthy"
    assert len(outcome.details["workers"]) >= 1


@checker("tests.always_ok")
def _always_ok(*, answer: int) -> bool:
    return answer == 42


@checker("tests.async_outcome")
async def _async_outcome() -> CheckOutcome:
    return CheckOutcome("degraded", 1.0, "half")


async def test_python__registered_sync_callable__healthy():
    config = {"name": "tests.always_ok", "params": {"answer": 42}}
    assert (await _run("python", config)).status == "healthy"


async def test_python__async_callable_outcome__passed_through():
    outcome = await _run("python", {"name": "tests.async_outcome"})
    assert (outcome.status, outcome.message) == ("degraded", "half")


async def test_python__unregistered_name__unhealthy():
    outcome = await _run("python", {"name": "tests.nobody"})
    assert outcome.status == "unhealthy"
