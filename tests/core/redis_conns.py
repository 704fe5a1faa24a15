"""Count a process's TCP connections to the test Redis, from /proc (Linux)."""

import os
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

ESTABLISHED = "01"
LISTEN = "0A"


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed since the listing
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _tcp_rows(pid: int) -> list[list[str]]:
    rows = []
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        rows.extend(line.split() for line in lines)
    return rows


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def redis_connections(pid: int) -> int:
    """Established connections from process ``pid`` to ``settings.REDIS_URL``."""
    port = urlsplit(settings.REDIS_URL).port
    inodes = _socket_inodes(pid)
    return sum(
        1
        for row in _tcp_rows(pid)
        if _port(row[2]) == port and row[3] == ESTABLISHED and row[9] in inodes
    )


def listening_pid(port: int) -> int:
    """The process listening on TCP ``port`` (one of this user's)."""
    listening = {
        row[9]
        for row in _tcp_rows(os.getpid())
        if _port(row[1]) == port and row[3] == LISTEN
    }
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if _socket_inodes(int(proc.name)) & listening:
                    return int(proc.name)
            except OSError:
                continue  # gone, or not ours to read
    raise AssertionError(f"no process listens on port {port}")
