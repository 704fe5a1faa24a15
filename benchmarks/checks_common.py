"""Shared setup of the components benchmarks (issue #5): servers, processes, data.

Uses DATABASE_URL / REDIS_URL when set (the database must be a scratch one: the
benchmarks fill its components tables), else starts an embedded PostgreSQL and
Valkey for the run, removed afterwards. Every process started here (HTTP target,
Celery worker, beat, daphne) runs in its own session and is killed when the run
ends, also on Ctrl-C, SIGTERM or an exception.

Run as ``python -m benchmarks.checks_common target --port P`` it is the HTTP
target: an aiohttp server answering ``GET /c/<id>`` with 200 ``ok`` and noting
each arrival (component id, wall time) for the lag figures.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil

from opsconsole.embedded import (
    EmbeddedPostgres,
    EmbeddedValkey,
    free_port,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parent.parent
# Production settings (DEBUG off) on 127.0.0.1, one secret shared by every process
# of the run, our own Redis prefix so a shared Redis is not disturbed.
RUN_ENV = {
    "DJANGO_SETTINGS_MODULE": "opsconsole.settings",
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "checks-benchmark-only",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,testserver",
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "OPSCONSOLE_LOG_LEVEL": "WARNING",
    "OPSCONSOLE_REDIS_PREFIX": "checksbench:",
    "PYTHONUNBUFFERED": "1",
}
SLUG_PREFIX = "bench-"


# --- servers and processes ---------------------------------------------------------
def tree_cpu_seconds(root: psutil.Process) -> float:
    """CPU time of ``root`` and all its children (a prefork pool, PG backends)."""
    total = 0.0
    with suppress(psutil.Error):
        for proc in [root, *root.children(recursive=True)]:
            with suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


class Proc:
    """A child process in its own session, its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path, **env: str) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter
                argv,
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.proc = psutil.Process(self.popen.pid)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.proc)

    def stop(self) -> None:
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Prefork children left behind by a killed parent share its group.
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)


class Run:
    """The run's temporary directory, servers and child processes."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self.root = Path(tempfile.mkdtemp(prefix="opsconsole-checks-bench-"))
        self.root.chmod(0o755)
        stack.callback(shutil.rmtree, self.root, ignore_errors=True)
        self.postgres: EmbeddedPostgres | None = None
        self.target: Proc | None = None

    def start(self, name: str, argv: list[str], **env: str) -> Proc:
        proc = Proc(name, argv, self.root / f"{name}-{time.monotonic_ns()}.log", **env)
        self.stack.callback(proc.stop)
        return proc

    def postgres_cpu_seconds(self) -> float | None:
        """CPU time of the embedded PostgreSQL's processes; None if not ours."""
        if self.postgres is None or (pid := self.postgres.pid()) is None:
            return None
        return tree_cpu_seconds(psutil.Process(pid))


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def run_context() -> Iterator[Run]:
    """Servers up and DATABASE_URL / REDIS_URL set; everything stopped on exit."""
    signal.signal(signal.SIGTERM, _sigterm)
    os.environ.update(RUN_ENV)
    with ExitStack() as stack:
        run = Run(stack)
        runtime = run.root / "runtime"
        runtime.mkdir(mode=0o700)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
        if not os.environ.get("DATABASE_URL"):
            postgres = EmbeddedPostgres(run.root / "postgres", free_port())
            postgres.start()
            stack.callback(postgres.stop)
            postgres.ensure_database("checksbench")
            os.environ["DATABASE_URL"] = postgres.url("checksbench")
            run.postgres = postgres
        if not os.environ.get("REDIS_URL"):
            valkey = EmbeddedValkey(run.root / "valkey", free_port())
            valkey.start()
            stack.callback(valkey.stop)
            os.environ["REDIS_URL"] = valkey.url
        yield run


def django_ready() -> None:
    """Django set up on the run's database, migrated."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start_target(run: Run) -> str:
    """The HTTP target in its own process; its base URL."""
    port = free_port()
    proc = run.start(
        "target",
        [
            sys.executable,
            "-m",
            "benchmarks.checks_common",
            "target",
            "--port",
            str(port),
        ],
    )
    if not wait_for_port(port, timeout=30):
        raise RuntimeError(f"the target did not listen:\n{proc.tail()}")
    run.target = proc
    return f"http://127.0.0.1:{port}"


def start_worker(run: Run) -> Proc:
    """One real Celery worker as ``make run`` starts it (prefork, 2 children)."""
    from opsconsole.celery import app

    hostname = f"checksbench-{os.getpid()}@localhost"
    argv = [sys.executable, "-m", "celery", "-A", "opsconsole", "worker"]
    argv += ["-l", "INFO", "-P", "prefork", "-c", "2", "-n", hostname]
    argv += ["--without-gossip", "--without-mingle"]
    proc = run.start("worker", argv, OPSCONSOLE_DB_POOL="false")
    deadline = time.monotonic() + 90
    while not app.control.ping(destination=[hostname], timeout=0.5):
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not answer:\n{proc.tail()}")
    return proc


def start_beat(run: Run) -> Proc:
    """Celery beat with the project's schedule (dispatch_due every second)."""
    var = run.root / "beat"
    var.mkdir(exist_ok=True)
    argv = [sys.executable, "-m", "celery", "-A", "opsconsole", "beat", "-l", "INFO"]
    return run.start("beat", argv, OPSCONSOLE_VAR_DIR=str(var))


def start_daphne(run: Run) -> tuple[Proc, str]:
    port = free_port()
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    proc = run.start("daphne", [*argv, "-v", "0", "opsconsole.asgi:application"])
    if not wait_for_port(port, timeout=60):
        raise RuntimeError(f"daphne did not listen:\n{proc.tail()}")
    return proc, f"http://127.0.0.1:{port}"


# --- data ---------------------------------------------------------------------------
def components_register(
    count: int, target: str, *, interval: int = 30, due_in: float = 86400.0
) -> list[int]:
    """``count`` HTTP components (and their state rows) on ``target``; their ids.

    Bulk-created through the ORM for speed, with configs the HTTP checker's schema
    accepts; due in ``due_in`` seconds (not due before a phase sets them due)."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from apps.components.models import Component, ComponentState, config_errors

    config = {"url": f"{target}/c/0"}
    if config_errors("http", config):
        raise RuntimeError(f"invalid benchmark config: {config_errors('http', config)}")
    due = timezone.now() + timedelta(seconds=due_in)
    with transaction.atomic():
        Component.objects.filter(slug__startswith=SLUG_PREFIX).delete()
        made = Component.objects.bulk_create(
            (
                Component(
                    name=f"bench {n}",
                    slug=f"{SLUG_PREFIX}{n}",
                    group=f"group-{n % 20}",
                    tags=[f"tag-{n % 7}"],
                    kind="http",
                    config={"url": f"{target}/c/{n}"},
                    interval_seconds=interval,
                    timeout_seconds=10.0,
                    next_check_at=due,
                )
                for n in range(count)
            ),
            batch_size=2000,
        )
        ComponentState.objects.bulk_create(
            (ComponentState(component_id=c.pk) for c in made), batch_size=2000
        )
    return [c.pk for c in made]


# --- figures ------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- the HTTP target ----------------------------------------------------------------
def target_main(port: int) -> None:
    """Serve ``/c/<id>`` (noting arrivals), ``/__arrivals`` (JSON, then cleared)."""
    import json
    from array import array

    from aiohttp import web

    ids, times = array("q"), array("d")

    async def check(request: web.Request) -> web.Response:
        ids.append(int(request.match_info["id"]))
        times.append(time.time())
        return web.Response(text="ok")

    async def arrivals(request: web.Request) -> web.Response:
        body = json.dumps({"ids": ids.tolist(), "times": times.tolist()})
        del ids[:], times[:]
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/c/{id}", check)
    app.router.add_get("/__arrivals", arrivals)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def target_arrivals(target: str) -> list[tuple[int, float]]:
    """What reached the target since the last call: (path id, wall time) pairs."""
    import json
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{target}/__arrivals", timeout=30) as response:
        data = json.loads(response.read())
    return list(zip(data["ids"], data["times"], strict=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["target"])
    parser.add_argument("--port", type=int, required=True)
    target_main(parser.parse_args().port)
