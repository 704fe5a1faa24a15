"""One process's view of a breaker: local state and window (the hot path).

The closed path touches only this object's memory. Redis is reached from the
caller's thread only for half-open permits; everything else goes through the
process's ``apps.breakers.agent.Agent`` thread, which flushes outcomes in batches
and pushes the fleet's transitions back here.
"""

import itertools
import threading
import time
from typing import Protocol

from apps.breakers.config import BreakerConfig, State, WindowType, exception_classes
from apps.breakers.exceptions import BreakerOpenError
from apps.breakers.fleet import Reply
from apps.breakers.window import rates_exceeded, window_new

_CLOSED, _DISABLED, _OPEN = State.CLOSED, State.DISABLED, State.OPEN
_HALF_OPEN, _FORCED_OPEN = State.HALF_OPEN, State.FORCED_OPEN
# (gen, calls, failures, slow, released permits), the reason to open or "".
Batch = tuple[tuple[int, int, int, int, int], str]


class Agent(Protocol):
    """What a breaker needs from its process's agent."""

    interval: float

    def connected(self) -> bool: ...

    def wake(self) -> None: ...

    def permit(self, breaker: "LocalBreaker") -> bool: ...

    def transitioned(
        self, breaker: "LocalBreaker", from_state: State, to: State, reason: str
    ) -> None: ...


class LocalBreaker:
    """State machine of one breaker in this process; ``agent`` syncs it fleet-wide."""

    def __init__(self, name: str, config: BreakerConfig, agent: Agent) -> None:
        self.name = name
        self.agent = agent
        self.lock = threading.Lock()
        self.state = State.CLOSED
        # The fleet's generation (bumped by every fleet transition) and a local
        # phase counter, so an outcome only counts in the phase that admitted it.
        self.gen = 0
        self.epoch = 0
        self.open_until = 0.0
        self.opens = 0
        # Outcomes not flushed yet: calls, failures, slow, released permits.
        self.pending = [0, 0, 0, 0]
        # Set by every outcome or proposal, cleared by ``take_batch``: the flusher
        # visits only the breakers used since its last round, so a process that
        # knows 10,000 breakers does not take 10,000 batches ten times a second.
        self.touched = False
        # Why this process opened the breaker, until the fleet has heard it.
        self.proposal = ""
        # Transitions were made here while Redis was unreachable.
        self.local_only = False
        self.ho_admitted = 0
        self.ho = [0, 0, 0]
        self.phase_at = time.monotonic()
        # The epoch while the window is a full count window without a failed or
        # slow call, else -1. A quick success then changes nothing in the window
        # (its ring is all successes) but the call count for the fleet, which
        # ``quiet_calls`` keeps without the lock: next() on it is atomic in CPython.
        self.quiet_epoch = -1
        self.quiet_calls = itertools.count()
        self._quiet_base = 0
        # Calls refused while open (the agent records them as metrics): counted
        # the same lock-free way, on the refusing path only.
        self.rejections = itertools.count()
        self._rejected_base = 0
        # Outcomes of ended phases not taken yet (calls, failures, slow): the
        # fleet drops them with their phase, the agent still records them.
        self.retired = [0, 0, 0]
        self.apply_config(config)

    def apply_config(self, config: BreakerConfig) -> None:
        with self.lock:
            self.config = config
            self.slow_s = config.slow_call_duration_ms / 1000
            self.min_calls = config.min_calls
            self.record_types = exception_classes(config.record_exceptions)
            self.ignore_types = exception_classes(config.ignore_exceptions)
            self.window = window_new(config)
            self.quiet_epoch = -1
            count_window = config.window_type == WindowType.COUNT
            self._quiet_size = config.window_size if count_window else -1

    def succeeded(self, epoch: int, duration: float) -> None:
        """Count a call that returned: lock-free while the window is quiet."""
        if epoch == self.quiet_epoch and duration < self.slow_s:
            next(self.quiet_calls)
            self.touched = True
        else:
            self.record(epoch, duration, False)

    def acquire_fast(self) -> int | None:
        """Admit a call (its epoch) without I/O, None when a permit must be asked."""
        state = self.state
        if state is _CLOSED or state is _DISABLED:
            return self.epoch
        if state is _FORCED_OPEN:
            next(self.rejections)
            self.touched = True
            raise BreakerOpenError(
                self.name, state, self.config.wait_duration_ms / 1000
            )
        if state is _OPEN:
            remaining = self.open_until - time.monotonic()
            if remaining > 0:
                next(self.rejections)
                self.touched = True
                raise BreakerOpenError(self.name, state, remaining)
        return None

    def acquire(self) -> int:
        """Admit a call (its epoch) or raise BreakerOpenError."""
        epoch = self.acquire_fast()
        return self.acquire_permit() if epoch is None else epoch

    def acquire_permit(self) -> int:
        """A half-open permit from the fleet (a round trip) or locally when degraded."""
        if self.agent.permit(self):
            return self.epoch
        next(self.rejections)
        self.touched = True
        retry_after = (
            self.open_until - time.monotonic()
            if self.state is _OPEN
            else self.agent.interval  # every permit taken: one flush to a verdict
        )
        raise BreakerOpenError(self.name, self.state, retry_after)

    def local_permit(self) -> bool:
        """Half-open admission decided by this process alone (Redis unreachable)."""
        with self.lock:
            now = time.monotonic()
            if self.state is _OPEN and now >= self.open_until:
                self.go(_HALF_OPEN, "wait in open state elapsed")
            elif self.state is _HALF_OPEN and self._half_open_overdue(now):
                max_wait = self.config.max_wait_in_half_open_ms
                self.go(_OPEN, f"half-open calls not completed in {max_wait} ms")
            if (
                self.state is _HALF_OPEN
                and self.ho_admitted < self.config.permitted_calls_half_open
            ):
                self.ho_admitted += 1
                return True
            return self.state is _CLOSED or self.state is _DISABLED

    def _half_open_overdue(self, now: float) -> bool:
        max_wait = self.config.max_wait_in_half_open_ms
        return max_wait > 0 and now - self.phase_at >= max_wait / 1000

    def classify(self, exc: BaseException) -> bool | None:
        """True for a failure, None for an outcome that does not count."""
        if isinstance(exc, self.ignore_types) or not isinstance(exc, Exception):
            return None
        return not self.record_types or isinstance(exc, self.record_types)

    def record(self, epoch: int, duration: float, failed: bool | None) -> None:
        """Count one call's outcome in the local window (the hot path)."""
        with self.lock:
            state = self.state
            if epoch != self.epoch or state is _DISABLED:
                return
            self.touched = True
            pending = self.pending
            if failed is None:
                if state is _HALF_OPEN:
                    pending[3] += 1
                    self.ho_admitted -= 1
                return
            slow = duration >= self.slow_s
            pending[0] += 1
            if failed or slow:
                pending[1] += failed
                pending[2] += slow
            if state is _CLOSED:
                self._record_closed(epoch, failed, slow)
            elif state is _HALF_OPEN:
                self._record_half_open(failed, slow)

    def _record_closed(self, epoch: int, failed: bool, slow: bool) -> None:
        calls, failures, slows = self.window.add(failed, slow)
        # Rates only rise with a failed or slow call, or on reaching the minimum.
        minimum = self.min_calls
        if calls >= minimum and (failed or slow or calls == minimum):
            reason = rates_exceeded(self.config, calls, failures, slows)
            if reason:
                self.go(_OPEN, reason)
                return
        quiet = calls == self._quiet_size and not failures and not slows
        self.quiet_epoch = epoch if quiet else -1

    def _record_half_open(self, failed: bool, slow: bool) -> None:
        ho = self.ho
        ho[0], ho[1], ho[2] = ho[0] + 1, ho[1] + failed, ho[2] + slow
        if self.agent.connected() or ho[0] < self.config.permitted_calls_half_open:
            self.agent.wake()  # the fleet decides from every process's calls
            return
        reason = rates_exceeded(self.config, ho[0], ho[1], ho[2])
        if reason:
            self.go(_OPEN, "half-open: " + reason)
        else:
            self.go(_CLOSED, "half-open calls succeeded")

    def go(self, to: State, reason: str) -> None:
        """A transition decided here (hold ``lock``); the agent tells the fleet."""
        from_state = self.state
        self.state = to
        self._new_phase()
        if to is _OPEN:
            self.opens += 1
            cfg = self.config
            wait = cfg.wait_duration_ms * cfg.wait_multiplier ** (self.opens - 1)
            wait = min(wait, cfg.max_wait_duration_ms)
            self.open_until = time.monotonic() + wait / 1000
            self.proposal = self.proposal or reason
            self.touched = True
        elif to is _CLOSED:
            self.opens = 0
            self.proposal = ""
        if not self.agent.connected():
            self.local_only = True
            self.agent.transitioned(self, from_state, to, reason)
        self.agent.wake()

    def _new_phase(self) -> None:
        self.epoch += 1
        self.phase_at = time.monotonic()
        self.quiet_epoch = -1
        # A success racing the transition must not count for the fleet.
        quiet = self._take_quiet_calls()
        calls, failures, slow, _ = self.pending
        retired = self.retired
        retired[0] += calls + quiet
        retired[1] += failures
        retired[2] += slow
        if calls or quiet:
            self.touched = True  # the flusher records what the phase counted
        self.window = window_new(self.config)
        self.pending = [0, 0, 0, 0]
        self.ho_admitted = 0
        self.ho = [0, 0, 0]

    def adopt(self, reply: Reply) -> bool:
        """Take the fleet's state when it is newer; True when something changed.

        At the same generation the fleet only wins after a local-only spell with
        nothing left to propose: a trip decided here must first reach the fleet.
        """
        with self.lock:
            same = reply.gen == self.gen
            if reply.gen < self.gen or (
                same and not (self.local_only and not self.proposal)
            ):
                return False
            changed = not same or reply.state is not self.state
            self.state, self.gen = reply.state, reply.gen
            self.open_until = time.monotonic() + reply.remaining_s
            self.local_only = False
            if changed:
                self.proposal = ""
                self._new_phase()
            return changed

    def take_batch(self) -> Batch:
        """The pending outcomes and proposal, handed to the agent (and cleared)."""
        with self.lock:
            # Cleared before reading: an outcome counted meanwhile sets it again.
            self.touched = False
            calls, failures, slow, released = self.pending
            self.pending = [0, 0, 0, 0]
            quiet_calls = self._take_quiet_calls()
            if self.state is _CLOSED:
                calls += quiet_calls
            proposal = self.proposal if self.state is not _CLOSED else ""
            self.proposal = ""
            return (self.gen, calls, failures, slow, released), proposal

    def _take_quiet_calls(self) -> int:
        """Quiet successes since the last take (hold ``lock``); a take uses a number."""
        seen = next(self.quiet_calls)
        taken, self._quiet_base = seen - self._quiet_base, seen + 1
        return taken

    def take_spent(self) -> tuple[int, int, int, int]:
        """Calls, failures and slow calls of phases ended since the last take, and
        calls refused (one taker: the agent's flusher)."""
        with self.lock:
            calls, failures, slow = self.retired
            self.retired = [0, 0, 0]
        seen = next(self.rejections)
        rejected, self._rejected_base = seen - self._rejected_base, seen + 1
        return calls, failures, slow, rejected

    def restore_proposal(self, proposal: str) -> None:
        """A flush failed: keep the reason for the next one."""
        with self.lock:
            self.proposal = self.proposal or proposal
            self.touched = True

    def local_view(self) -> tuple[State, tuple[int, int, int]]:
        with self.lock:
            return self.state, self.window.totals()
