"""``manage.py health`` and ``manage.py checknow``."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.components.heartbeats import PingAction, heartbeat_ping
from apps.components.models import Component, Heartbeat
from apps.core.models import AuditEvent
from tests.components.helpers import make_component
from tests.procs import database_url_for_tests, wait_until

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def failing_heartbeat(slug: str) -> None:
    component = make_component(
        kind="heartbeat", slug=slug, config={"period_seconds": 9}
    )
    ping_uuid = Heartbeat.objects.get(component=component).ping_uuid
    heartbeat_ping(ping_uuid=ping_uuid, action=PingAction.FAIL, now=timezone.now())


def test_health__json__one_row_per_component_with_state():
    failing_heartbeat("nightly")
    make_component(slug="web")
    rows = json.loads(run("health", "--format", "json"))
    assert [(r["slug"], r["state"], r["status"]) for r in rows] == [
        ("nightly", "unhealthy", "fail"),
        ("web", "unknown", "warn"),
    ]
    assert rows[0]["message"] == "fail ping"


def test_health__csv__parses_back_to_the_json_rows():
    failing_heartbeat("nightly")
    as_json = json.loads(run("health", "--format", "json"))
    as_csv = list(csv.DictReader(io.StringIO(run("health", "--format", "csv"))))
    assert as_csv == as_json


def test_health__table__rows_and_overall_last():
    failing_heartbeat("nightly")
    lines = run("health").splitlines()
    assert lines[0].split()[:4] == ["slug", "kind", "state", "status"]
    assert lines[1].startswith("nightly")
    assert lines[-1] == "overall: fail"


def test_checknow__known__requested_and_audited_as_cli():
    make_component(slug="web")
    assert run("checknow", "web").startswith("Check of web requested")
    assert Component.objects.get(slug="web").claimed_until is not None
    assert AuditEvent.objects.get(action="component.check_requested").source == "cli"


def test_checknow__heartbeat__command_error():
    make_component(kind="heartbeat", slug="nightly", config={"period_seconds": 9})
    with pytest.raises(CommandError, match="pushed, not checked"):
        run("checknow", "nightly")


def test_checknow_process__unknown_slug__exit_1_one_line():
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "OPSCONSOLE_LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "checknow", "ghost"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["CommandError: No component 'ghost'."]
    assert result.stdout == ""


def test_health_process__watch__repeats_until_sigterm_then_exit_0():
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_tests(),
        "OPSCONSOLE_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "health", "--watch", "--interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: sum(line.startswith("overall:") for line in lines) >= 2,
            timeout=60,
            what="two reports",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    reader.join(5)
    assert proc.stderr is not None
    assert proc.stderr.read() == ""


@pytest.mark.parametrize("interval", ["0", "soon"])
def test_health__bad_interval__command_error(interval):
    with pytest.raises(CommandError, match="interval"):
        call_command("health", "--watch", "--interval", interval)
