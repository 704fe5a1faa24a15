"""The supervised processes: spawn, pump their output, stop them."""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from opsconsole.embedded import HOST
from opsconsole.run.common import (
    BASE_DIR,
    PR_SET_PDEATHSIG,
    STOP_GRACE_SECONDS,
    Console,
)
from opsconsole.run.lock import kill_group


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
        kill_group(child.process.pid)
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
