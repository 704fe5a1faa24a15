"""The bounded in-process buffer ``record()`` appends to and the persister drains.

Lock-free on the hot path: deque append and popleft are atomic in CPython, so a
signal handler that flushes from the main thread can never deadlock on it. Only
the drop counter takes a lock (many threads may drop at once).
"""

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement; ``tags`` is a tuple of sorted (key, value) pairs."""

    name: str
    tags: tuple[tuple[str, str], ...]
    at: datetime
    value: float


class Buffer:
    """Samples waiting for the persister; refuses (and counts) past ``bound``."""

    def __init__(self, *, bound: int, flush_at: int) -> None:
        self.bound = bound
        self.flush_at = flush_at
        self.wake = threading.Event()
        self.recorded = 0
        self.dropped = 0
        self._samples: deque[Sample] = deque()
        self._drop_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._samples)

    def append(self, sample: Sample) -> bool:
        """Queue ``sample``; False (and counted) when the buffer is full."""
        if len(self._samples) >= self.bound:
            with self._drop_lock:
                self.dropped += 1
            return False
        self._samples.append(sample)
        self.recorded += 1  # a statistic: a rare lost increment is harmless
        if len(self._samples) >= self.flush_at:
            self.wake.set()
        return True

    def take(self, limit: int) -> list[Sample]:
        """Up to ``limit`` of the oldest samples, removed from the buffer."""
        taken: list[Sample] = []
        popleft = self._samples.popleft
        try:
            for _ in range(limit):
                taken.append(popleft())
        except IndexError:
            pass
        return taken

    def put_back(self, samples: list[Sample]) -> None:
        """Return samples a failed flush took, oldest first, ahead of newer ones."""
        self._samples.extendleft(reversed(samples))
