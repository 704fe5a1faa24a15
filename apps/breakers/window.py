"""Per-process sliding windows: count-based (last N calls) or time-based (last N s)."""

import time

from apps.breakers.config import BreakerConfig, WindowType

_FAILED = 1
_SLOW = 2


class CountWindow:
    """The outcomes of the last ``size`` calls, with running totals."""

    __slots__ = ("_next", "_outcomes", "_size", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        self._size = size
        self._outcomes = [0] * size
        self._next = 0
        self.calls = self.failures = self.slow = 0

    def add(self, failed: bool, slow: bool) -> tuple[int, int, int]:
        """Count one outcome; the totals after it."""
        code = (_FAILED if failed else 0) | (_SLOW if slow else 0)
        at = self._next
        if self.calls == self._size:
            old = self._outcomes[at]
            if old:
                self.failures -= old & _FAILED
                self.slow -= (old & _SLOW) >> 1
        else:
            self.calls += 1
        self._outcomes[at] = code
        self._next = at + 1 if at + 1 < self._size else 0
        if code:
            self.failures += failed
            self.slow += slow
        return self.calls, self.failures, self.slow

    def totals(self) -> tuple[int, int, int]:
        return self.calls, self.failures, self.slow


class TimeWindow:
    """Per-second buckets over the last ``size`` seconds, with running totals."""

    __slots__ = ("_buckets", "_size", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        self._size = size
        # second (monotonic) -> [calls, failures, slow]
        self._buckets: dict[int, list[int]] = {}
        self.calls = self.failures = self.slow = 0

    def add(self, failed: bool, slow: bool) -> tuple[int, int, int]:
        """Count one outcome; the totals after it."""
        second = int(time.monotonic())
        bucket = self._buckets.get(second)
        if bucket is None:
            self._expire(second)
            bucket = self._buckets[second] = [0, 0, 0]
        bucket[0] += 1
        bucket[1] += failed
        bucket[2] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow
        return self.calls, self.failures, self.slow

    def _expire(self, now: int) -> None:
        for second in [s for s in self._buckets if s <= now - self._size]:
            calls, failures, slow = self._buckets.pop(second)
            self.calls -= calls
            self.failures -= failures
            self.slow -= slow

    def totals(self) -> tuple[int, int, int]:
        self._expire(int(time.monotonic()))
        return self.calls, self.failures, self.slow


Window = CountWindow | TimeWindow


def window_new(config: BreakerConfig) -> Window:
    """An empty window of the configured kind and size."""
    if config.window_type == WindowType.TIME:
        return TimeWindow(config.window_size)
    return CountWindow(config.window_size)


def rates_exceeded(config: BreakerConfig, calls: int, failures: int, slow: int) -> str:
    """Why these totals open the breaker ("" when they don't)."""
    if calls == 0:
        return ""
    failure_rate = failures * 100.0 / calls
    if failure_rate >= config.failure_rate_threshold:
        return f"failure rate {failure_rate:.1f}% >= {config.failure_rate_threshold}%"
    slow_rate = slow * 100.0 / calls
    if slow_rate >= config.slow_call_rate_threshold:
        return f"slow-call rate {slow_rate:.1f}% >= {config.slow_call_rate_threshold}%"
    return ""
