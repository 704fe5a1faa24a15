"""One `make run`: start the servers, migrate, supervise the children, stop."""

import contextlib
import functools
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType

from django.core.exceptions import ImproperlyConfigured

from opsconsole.embedded import (
    HOST,
    EmbeddedPostgres,
    EmbeddedServerError,
    EmbeddedValkey,
    free_port,
    port_is_free,
)
from opsconsole.run.children import (
    Child,
    child_commands,
    describe_exit,
    livez_ok,
    pump,
    spawn,
    stop_children,
)
from opsconsole.run.common import (
    ADMIN_USERNAME,
    DATABASE_NAME,
    GENERATED_PASSWORD,
    LIVEZ_WARN_SECONDS,
    PASSWORD_VARIABLE,
    POLL_SECONDS,
    RUN_ENV_DEFAULTS,
    Config,
    Console,
    RunError,
    prepare_environment,
    read_config,
    use_color,
)
from opsconsole.run.lock import RunLock


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
            self._components_self,
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

    def _components_self(self) -> None:
        # The console watches its own servers and workers from the first minute.
        self._step("components_self", ["components_self"], self._env())

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
