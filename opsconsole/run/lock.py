"""``run.pid``: which run owns the var directory, and what a crashed run left behind."""

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil

from opsconsole.run.common import (
    POLL_SECONDS,
    SERVER_NAMES,
    STOP_GRACE_SECONDS,
    Console,
    RunError,
)


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
        kill_group(process.pid)
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


def kill_group(pgid: int) -> None:
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
