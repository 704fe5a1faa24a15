"""Append-only spill files for samples the database could not take in time.

Each process writes its own ``spill-<host>-<pid>.jsonl`` (one JSON array per
sample). Replay claims a file by renaming it to ``replay-<host>-<pid>-<n>.jsonl``:
the process's own spill file, and those of processes on this host that are gone.
A claimed file is deleted only after its samples are committed.
"""

import json
import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import count
from pathlib import Path

import psutil

from apps.metrics.buffer import Row, at_us
from apps.metrics.series import series_of, series_parts

_claims = count()


class Spill:
    """The spill directory as seen by one process."""

    def __init__(self, *, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.host = socket.gethostname()
        self.spilled = 0
        self.dropped = 0
        self.replayed = 0

    @property
    def path(self) -> Path:
        return self.directory / f"spill-{self.host}-{os.getpid()}.jsonl"

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def write(self, samples: Sequence[Row]) -> None:
        """Append what fits under ``max_bytes``; count the rest as dropped."""
        self.directory.mkdir(parents=True, exist_ok=True)
        room = self.max_bytes - self.size()
        lines = []
        for row in samples:
            line = _encode(row)
            room -= len(line)
            if room < 0:
                break
            lines.append(line)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())
        self.spilled += len(lines)
        self.dropped += len(samples) - len(lines)

    def claim(self) -> list[Path]:
        """Rename replayable files to this process's claims; all its claims."""
        if not self.directory.is_dir():
            return []
        for path in self.directory.glob(f"*-{self.host}-*.jsonl"):
            pid = _pid_of(path)
            mine = pid == os.getpid()
            if (mine and path.name.startswith("spill-")) or _dead(pid):
                path.rename(self._claim_name())
        return sorted(self.directory.glob(f"replay-{self.host}-{os.getpid()}-*.jsonl"))

    def _claim_name(self) -> Path:
        return (
            self.directory / f"replay-{self.host}-{os.getpid()}-{next(_claims)}.jsonl"
        )

    def has_claimable(self) -> bool:
        return self.directory.is_dir() and any(
            self.directory.glob(f"*-{self.host}-*.jsonl")
        )


def read(path: Path) -> list[Row]:
    """The samples of a spill file; a torn last line (a crash mid-write) is skipped."""
    samples = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                samples.append(_decode(line))
            except (ValueError, TypeError):
                continue
    return samples


def _encode(row: Row) -> str:
    series, us, value = row
    line = [*series_parts(series), us, value]
    return json.dumps(line, separators=(",", ":")) + "\n"


def _decode(line: str) -> Row:
    # ``at`` is microseconds since 2000-01-01; files of older versions hold ISO text.
    name, tags, at, value = json.loads(line)
    us = (
        at_us(datetime.fromisoformat(at).astimezone(UTC)) if isinstance(at, str) else at
    )
    if not isinstance(us, int):
        raise TypeError(f"bad time {at!r}")
    series = series_of(str(name), tuple((str(k), str(v)) for k, v in tags))
    return (series, us, float(value))


def _dead(pid: int | None) -> bool:
    return pid is not None and pid != os.getpid() and not psutil.pid_exists(pid)


def _pid_of(path: Path) -> int | None:
    # spill-<host>-<pid>.jsonl or replay-<host>-<pid>-<n>.jsonl; hosts may hold "-".
    parts = path.stem.split("-")
    index = -1 if path.name.startswith("spill-") else -2
    try:
        return int(parts[index])
    except (ValueError, IndexError):
        return None
