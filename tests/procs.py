"""Real processes for integration, browser and fault tests: daphne and Celery.

Each runs the project's own entry points as a subprocess against the test database
(pytest-django's ``test_*`` database) and the session's Redis, exactly as production
runs them. Waits are conditions with deadlines, never fixed sleeps.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.db import connection

from opsconsole.embedded import free_port, wait_for_port

REPO = Path(__file__).resolve().parent.parent


def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "",
) -> Any:
    """Poll ``condition`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or condition}: {last_error!r}"
    )


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie not reaped yet counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def database_url_for_tests() -> str:
    """A URL for the database pytest-django created (call after django_db_setup)."""
    params = connection.settings_dict
    user = quote(params["USER"] or "")
    password = f":{quote(params['PASSWORD'])}" if params.get("PASSWORD") else ""
    host = params["HOST"] or "127.0.0.1"
    port = f":{params['PORT']}" if params.get("PORT") else ""
    return f"postgresql://{user}{password}@{host}{port}/{params['NAME']}"


def child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(DATABASE_URL=database_url_for_tests(), PYTHONUNBUFFERED="1", **overrides)
    return env


class Proc:
    """A subprocess whose output is kept in a file for failure messages."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], log: Path
    ) -> None:
        self.name = name
        self.log = log
        self._log_file = log.open("wb")
        self.popen = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log_file.close()
        return self.popen.returncode


@contextmanager
def daphne(tmp: Path, *, port: int | None = None, **env: str) -> Iterator[str]:
    """Serve opsconsole.asgi with daphne (on ``port``, else a free one); yields the
    base URL."""
    port = port or free_port()
    proc = Proc(
        "web",
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "opsconsole.asgi:application",
        ],
        child_env(**env),
        tmp / "daphne.log",
    )
    try:
        if not wait_for_port(port, timeout=30):
            raise AssertionError(f"daphne did not listen:\n{proc.output()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


@contextmanager
def celery_worker(tmp: Path, *, name: str = "test", **env: str) -> Iterator[Proc]:
    """Run a real prefork Celery worker; yields once it answers a control ping."""
    from opsconsole.celery import app

    hostname = f"{name}-{os.getpid()}@localhost"
    proc = Proc(
        "worker",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "opsconsole",
            "worker",
            "-l",
            "INFO",
            "-P",
            "prefork",
            "-c",
            "2",
            "-n",
            hostname,
            "--without-gossip",
            "--without-mingle",
        ],
        child_env(OPSCONSOLE_DB_POOL="false", **env),
        tmp / f"worker-{name}.log",
    )
    try:
        wait_until(
            lambda: (
                proc.popen.poll() is None
                and app.control.ping(destination=[hostname], timeout=0.5)
            ),
            timeout=60,
            what=f"worker {hostname} to answer ping; log:\n{proc.output()}",
        )
        yield proc
    finally:
        proc.stop()


def celery_beat(tmp: Path, **env: str) -> Proc:
    """Start celery beat with its schedule file under ``tmp``; the caller stops it."""
    return Proc(
        "beat",
        [sys.executable, "-m", "celery", "-A", "opsconsole", "beat", "-l", "INFO"],
        child_env(OPSCONSOLE_VAR_DIR=str(tmp), **env),
        tmp / f"beat-{time.monotonic_ns()}.log",
    )


@contextmanager
def running_workers_paused(queue: str = "default") -> Iterator[list[str]]:
    """Make every worker running now (say, the session's) stop consuming ``queue``
    meanwhile, so tasks go only to workers the test starts; yields their names."""
    from opsconsole.celery import app

    replies = app.control.ping(timeout=1.0) or []
    paused = sorted(name for reply in replies for name in reply)
    if paused:
        app.control.cancel_consumer(queue, destination=paused, reply=True, timeout=2)
    try:
        yield paused
    finally:
        if paused:
            app.control.add_consumer(queue, destination=paused, reply=True, timeout=2)
