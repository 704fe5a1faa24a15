import os
import secrets
import subprocess
import sys

import pytest

from tests.procs import REPO

BASE_ENV = {
    "PATH": os.environ["PATH"],
    "DATABASE_URL": "postgresql://ops@127.0.0.1:1/ops",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}
PRODUCTION = {
    **BASE_ENV,
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "ops.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://ops.example.com",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_deploy__production_settings__no_issues():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG='maybe' is not a boolean"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY is required"),
        ({"DATABASE_URL": "mysql://x@h/db"}, "DATABASE_URL: scheme must be one of"),
        ({"DATABASE_URL": ""}, "DATABASE_URL is not set"),
        ({"REDIS_URL": "redis://h:notaport/0"}, "REDIS_URL: the port is not a number"),
        (
            {"OPSCONSOLE_DB_POOL_MAX": "lots"},
            "OPSCONSOLE_DB_POOL_MAX='lots' is not an integer",
        ),
        ({"OPSCONSOLE_LOG_FORMAT": "xml"}, "must be console or json"),
        (
            {"OPSCONSOLE_METRICS_RETENTION_RULES": "app.*=minute:0"},
            "OPSCONSOLE_METRICS_RETENTION_RULES: 'minute:0' in 'app.*' is not",
        ),
        (
            {"OPSCONSOLE_METRICS_RETENTION_RULES": "app.*=week:3"},
            "'week:3' in 'app.*' is not key:number with a key among minute, hour, day",
        ),
        (
            {"OPSCONSOLE_METRICS_RETENTION_RULES": "app x=minute:3"},
            "OPSCONSOLE_METRICS_RETENTION_RULES: 'app x=minute:3' is not pattern=",
        ),
    ],
)
def test_settings__bad_value__one_line_startup_error(override, message):
    result = manage("check", env={**PRODUCTION, **override})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_settings__secret_from_file__used(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(secrets.token_urlsafe(50) + "\n")
    env = {**PRODUCTION, "DJANGO_SECRET_KEY": "", "DJANGO_SECRET_KEY_FILE": str(secret)}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stderr


def test_env_rules__in_order_blank_rules_dropped(monkeypatch):
    from opsconsole.env import env_rules

    text = " component.check.*=minute:2, hour:35 ;; breaker.calls=minute:3 ;"
    monkeypatch.setenv("RULES", text)
    assert env_rules("RULES", "", keys=("minute", "hour")) == [
        ("component.check.*", {"minute": 2, "hour": 35}),
        ("breaker.calls", {"minute": 3}),
    ]


def test_env_rules__unset_default_empty_none(monkeypatch):
    from opsconsole.env import env_rules

    monkeypatch.delenv("RULES", raising=False)
    assert env_rules("RULES", "a.*=hour:4", keys=("hour",)) == [("a.*", {"hour": 4})]
    monkeypatch.setenv("RULES", "")
    assert env_rules("RULES", "a.*=hour:4", keys=("hour",)) == []
