"""Shared setup of the breakers benchmarks: a Redis for the run."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opsconsole.embedded import EmbeddedValkey, free_port


@contextmanager
def redis_url() -> Iterator[str]:
    """REDIS_URL when set, else an embedded Valkey started (and stopped) for the run."""
    url = os.environ.get("REDIS_URL", "")
    if url:
        yield url
        return
    valkey = EmbeddedValkey(Path(tempfile.mkdtemp()) / "valkey", free_port())
    valkey.start()
    try:
        yield valkey.url
    finally:
        valkey.stop()


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
