"""Actions against real local targets: a webhook receiver, real subprocesses."""

import hashlib
import hmac
import json
import sys

import pytest

from apps.core.exceptions import ValidationFailed
from apps.healing.actions import HealContext, action_run
from apps.healing.actions.base import OUTPUT_LIMIT
from tests.components.helpers import make_component
from tests.healing.helpers import SECRET, make_policy, receiver
from tests.procs import pid_alive

CTX = HealContext(slug="api", attempt=2, reason="down", trace_id="ab" * 16, timeout=5)


def test_webhook__expected_status__ok_with_valid_hmac_signature():
    with receiver() as target:
        result = action_run("webhook", {"url": target.url(), "secret": SECRET}, CTX)

    assert result.ok
    ((headers, body),) = target.received
    signed = headers["X-Opsconsole-Timestamp"].encode() + b"." + body
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert headers["X-Opsconsole-Signature"] == f"sha256={expected}"
    assert json.loads(body) == {
        "component": "api",
        "attempt": 2,
        "reason": "down",
        "trace_id": "ab" * 16,
    }


def test_webhook__unexpected_status__failed_with_status_in_output():
    with receiver() as target:
        target.status = 500
        config = {"url": target.url(), "secret": SECRET, "expected_status": [200]}
        result = action_run("webhook", config, CTX)

    assert not result.ok
    assert result.output.startswith("HTTP 500")


def test_command__argv_not_allowed__refused_and_never_run(settings, tmp_path):
    marker = tmp_path / "ran"
    argv = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    settings.OPSCONSOLE_HEALING_COMMANDS = [[sys.executable, "-c", "pass"]]

    result = action_run("command", {"argv": argv}, CTX)

    assert not result.ok
    assert "not in OPSCONSOLE_HEALING_COMMANDS" in result.output
    assert not marker.exists()


@pytest.mark.django_db
def test_policy_save__command_not_allowed__validation_error_on_config(settings):
    settings.OPSCONSOLE_HEALING_COMMANDS = []

    with pytest.raises(ValidationFailed) as refused:
        make_policy(make_component(), action="command", config={"argv": ["reboot"]})

    assert "not in OPSCONSOLE_HEALING_COMMANDS" in " ".join(
        refused.value.fields["config"]
    )


def test_command__allowed_argv__runs_output_captured_and_truncated(settings):
    argv = [sys.executable, "-c", "print('x' * 10000 + 'END')"]
    settings.OPSCONSOLE_HEALING_COMMANDS = [argv]

    result = action_run("command", {"argv": argv}, CTX)

    assert result.ok
    assert result.output.rstrip().endswith("END")
    assert len(result.output) <= OUTPUT_LIMIT + 1


def test_command__slower_than_timeout__failed_timed_out_and_killed(settings, tmp_path):
    pid_file = tmp_path / "pid"
    argv = ["/bin/sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"]
    settings.OPSCONSOLE_HEALING_COMMANDS = [argv]
    ctx = HealContext(slug="api", attempt=1, reason="", trace_id="", timeout=0.5)

    result = action_run("command", {"argv": argv}, ctx)

    assert (result.ok, result.output) == (False, "timed out after 0.5 s")
    assert not pid_alive(int(pid_file.read_text()))
