"""docker-compose.yml and the Dockerfile describe the production topology.

Docker does not run here, so these read the files and check them against the code
they start: the commands, the environment settings.py insists on, the healthchecks.
"""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import yaml
from django.conf import settings

from opsconsole.beat import beat_lock_key

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO / "Dockerfile").read_text()
SETTINGS_SOURCE = (REPO / "opsconsole" / "settings.py").read_text()

APP_SERVICES = ("migrate", "web", "worker", "beat")
LONG_RUNNING = ("postgres", "redis", "web", "worker", "beat")
# web listens on all the container's interfaces; nothing here binds to it.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
PRODUCTION_COMMANDS = {
    "web": [
        "daphne",
        "-b",
        ALL_INTERFACES,
        "-p",
        "8000",
        "opsconsole.asgi:application",
    ],
    "worker": ["celery", "-A", "opsconsole", "worker", "-l", "INFO"],
    "beat": ["celery", "-A", "opsconsole", "beat", "-l", "INFO"],
    "migrate": ["python", "manage.py", "migrate", "--noinput"],
}
# settings.py raises ImproperlyConfigured without these in production.
REQUIRED_ENV = ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY")


def _interpolated(value: str) -> str:
    """``value`` as compose passes it, with each ``${VAR...}`` given a plain value."""
    return re.sub(r"\$\{[^}]+\}", "value", value)


def _command(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    return command.split() if isinstance(command, str) else command


def _healthcheck_test(service: str) -> list[str]:
    test = SERVICES[service]["healthcheck"]["test"]
    return ["CMD-SHELL", test] if isinstance(test, str) else test


def _python_snippet(service: str) -> str:
    test = _healthcheck_test(service)
    assert test[:3] == ["CMD", "python", "-c"], test
    return test[3]


def test_compose__services__production_topology_plus_migrate():
    assert set(SERVICES) == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    assert SERVICES["postgres"]["image"].startswith("postgres:17")
    assert SERVICES["redis"]["image"].split(":")[0] in {"redis", "valkey/valkey"}


@pytest.mark.parametrize("service", sorted(PRODUCTION_COMMANDS))
def test_compose_command__app_service__is_the_production_command(service):
    assert _command(service) == PRODUCTION_COMMANDS[service]


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_compose_healthcheck__long_running_service__declared(service):
    healthcheck = SERVICES[service].get("healthcheck") or {}
    test = healthcheck.get("test")
    assert test, f"{service} has no healthcheck"
    assert test != ["NONE"]
    assert not healthcheck.get("disable")


def test_compose_healthcheck__datastores__use_their_native_probes():
    assert _healthcheck_test("postgres")[:2] == ["CMD", "pg_isready"]
    assert _healthcheck_test("redis")[1:] in (
        ["redis-cli", "ping"],
        ["valkey-cli", "ping"],
    )


@pytest.mark.parametrize("service", ["web", "worker", "beat"])
def test_compose_depends_on__app_service__waits_for_healthy_stores_and_migrate(service):
    depends_on = SERVICES[service]["depends_on"]
    assert depends_on["postgres"] == {"condition": "service_healthy"}
    assert depends_on["redis"] == {"condition": "service_healthy"}
    assert depends_on["migrate"] == {"condition": "service_completed_successfully"}


def test_compose_migrate__one_shot__waits_for_healthy_postgres_and_never_restarts():
    assert SERVICES["migrate"]["depends_on"]["postgres"] == {
        "condition": "service_healthy"
    }
    assert SERVICES["migrate"].get("restart", "no") == "no"
    assert "healthcheck" not in SERVICES["migrate"]


def test_compose_beat__replicas__exactly_one():
    beat = SERVICES["beat"]
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    assert beat.get("scale", 1) == 1


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_env__app_service__sets_every_required_setting(service):
    env = SERVICES[service]["environment"]
    for name in REQUIRED_ENV:
        assert f'"{name}"' in SETTINGS_SOURCE, f"settings.py no longer reads {name}"
        assert env.get(name), f"{service} lacks {name}"
    assert str(env["DJANGO_DEBUG"]).lower() == "false"
    # Compose refuses to start without a secret instead of running with an empty one.
    assert re.fullmatch(r"\$\{DJANGO_SECRET_KEY:\?[^}]+\}", env["DJANGO_SECRET_KEY"])
    assert env["DJANGO_ALLOWED_HOSTS"]
    assert env["DJANGO_CSRF_TRUSTED_ORIGINS"]


def test_compose_env__every_variable__is_read_by_the_code():
    code = "".join(
        path.read_text()
        for folder in ("opsconsole", "apps")
        for path in (REPO / folder).rglob("*.py")
    )
    names = set()
    for service in APP_SERVICES:
        names |= set(SERVICES[service]["environment"])
    unknown = sorted(name for name in names if f'"{name}"' not in code)
    assert not unknown, f"compose sets variables nothing reads: {unknown}"


def test_compose_env__urls__point_at_the_compose_services():
    env = SERVICES["web"]["environment"]
    database = urlsplit(_interpolated(env["DATABASE_URL"]))
    assert database.scheme in {"postgres", "postgresql"}
    assert database.hostname == "postgres"
    assert (
        database.path.lstrip("/") == SERVICES["postgres"]["environment"]["POSTGRES_DB"]
    )
    assert database.username == SERVICES["postgres"]["environment"]["POSTGRES_USER"]
    assert urlsplit(_interpolated(env["REDIS_URL"])).hostname == "redis"


def test_compose_worker__env__turns_the_db_pool_off():
    assert (
        str(SERVICES["worker"]["environment"]["OPSCONSOLE_DB_POOL"]).lower() == "false"
    )
    assert "OPSCONSOLE_DB_POOL" not in SERVICES["web"]["environment"]


def test_compose_web_healthcheck__livez_on_localhost__allowed_and_not_redirected():
    snippet = _python_snippet("web")
    compile(snippet, "web-healthcheck", "exec")
    url = urlsplit(re.search(r"http://[^'\"]+", snippet).group(0))
    assert url.port == 8000
    assert url.path == "/livez"
    allowed = _interpolated(SERVICES["web"]["environment"]["DJANGO_ALLOWED_HOSTS"])
    assert url.hostname in allowed.split(",")
    # SECURE_SSL_REDIRECT is on in production; the probe must still get a 200.
    assert any(
        re.search(p, url.path.lstrip("/")) for p in settings.SECURE_REDIRECT_EXEMPT
    )


def test_compose_worker_healthcheck__default_node_name__pinged():
    kind, shell = _healthcheck_test("worker")
    assert kind == "CMD-SHELL"
    # "$$" is compose's escape: the container's shell sees $HOSTNAME.
    assert "celery -A opsconsole inspect ping -d celery@$$HOSTNAME" in shell


@pytest.mark.parametrize(
    ("holder", "expected_exit"),
    [(f"{socket.gethostname()}:4242", 0), ("some-other-host:4242", 1), (None, 1)],
    ids=["held_here", "held_elsewhere", "not_held"],
)
def test_compose_beat_healthcheck__lock_holder__exit_code(holder, expected_exit):
    client = redis.Redis.from_url(settings.REDIS_URL)
    if client.get(beat_lock_key()) is not None:
        pytest.fail(f"{beat_lock_key()} is held by a running beat; cannot test")
    try:
        if holder is not None:
            client.set(beat_lock_key(), holder, ex=60)
        result = subprocess.run(
            [sys.executable, "-c", _python_snippet("beat")],
            cwd=REPO,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        client.delete(beat_lock_key())
    # A crash also exits 1: the failing cases must fail by verdict, not by traceback.
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == expected_exit, result.stderr


def test_compose_commands__modules_they_name__exist():
    assert (REPO / "manage.py").is_file()
    module, _, attribute = PRODUCTION_COMMANDS["web"][-1].partition(":")
    asgi = REPO / Path(*module.split(".")).with_suffix(".py")
    assert re.search(rf"^{attribute}\s*=", asgi.read_text(), re.MULTILINE)
    # `celery -A opsconsole` loads opsconsole.celery's `app`.
    assert re.search(r"^app\s*=", (REPO / "opsconsole" / "celery.py").read_text(), re.M)
    lock = (REPO / "requirements.lock").read_text()
    for package in ("daphne", "celery"):
        assert re.search(rf"^{package}==", lock, re.MULTILINE), package


def test_dockerfile__lock_install__requires_hashes():
    install = [
        line
        for line in _dockerfile_instructions()
        if re.search(r"\bpip install\b", line)
    ]
    assert install, "the Dockerfile installs nothing"
    for line in install:
        assert "--require-hashes" in line
        assert "-r requirements.lock" in line


def test_dockerfile__image__slim_python_collectstatic_non_root():
    instructions = _dockerfile_instructions()
    assert instructions[0] == "FROM python:3.11-slim"
    collect = [line for line in instructions if "collectstatic --noinput" in line]
    assert collect
    for name in REQUIRED_ENV:
        assert f"{name}=" in collect[0], (
            f"collectstatic needs {name} to import settings"
        )
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users
    assert users[-1] not in {"root", "0"}


def test_dockerignore__local_state__kept_out_of_the_image():
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "var", ".env"):
        assert entry in ignored


def _dockerfile_instructions() -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = (line.strip() for line in joined.splitlines())
    return [
        " ".join(line.split()) for line in lines if line and not line.startswith("#")
    ]
