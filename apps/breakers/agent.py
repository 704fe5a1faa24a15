"""The process's breakers and the two daemon threads that keep them fleet-wide.

- the *flusher* wakes every ``interval`` (or at once on a local transition), sends
  every breaker's pending outcomes to Redis in one pipelined round trip of Lua
  scripts, adopts the replies, registers new breakers in PostgreSQL and writes
  BreakerEvent rows for the transitions this process caused;
- the *listener* is subscribed to the breakers channel and adopts each transition
  (and config change) the moment any process's script publishes it.

When Redis is unreachable both say so (``health().degraded``), breakers decide
from their local window alone, and once Redis answers again every breaker is
flushed with its local proposal and takes the fleet's state (reconciliation).
"""

import asyncio
import json
import os
import queue
import re
import threading
from dataclasses import dataclass
from datetime import datetime

import redis
import structlog
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from apps import metrics
from apps.breakers.config import BreakerConfig, State
from apps.breakers.engine import LocalBreaker
from apps.breakers.fleet import TIMEOUT, Fleet, Reply
from apps.core.exceptions import ValidationFailed
from apps.core.trace import current_trace_id

log = structlog.get_logger(__name__)

NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
FLUSH_SECONDS = 0.1
# Transitions kept for the database while it is unreachable; older ones are dropped.
MAX_NOTES = 1000
CALLS_METRIC = "breaker.calls"


@dataclass(frozen=True, slots=True)
class Transition:
    """A transition to persist as a BreakerEvent (``origin``: fleet or process)."""

    name: str
    from_state: str
    to_state: str
    reason: str
    origin: str
    at: datetime
    trace_id: str


@dataclass(frozen=True, slots=True)
class AgentHealth:
    degraded: bool
    reason: str
    breakers: int


def _describe(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:200]


class Agent:
    """Every breaker of this process, synced with ``fleet`` by daemon threads."""

    def __init__(
        self, fleet: Fleet, *, interval: float = FLUSH_SECONDS, persist: bool = True
    ) -> None:
        self.fleet = fleet
        self.interval = interval
        self.persist = persist
        self.breakers: dict[str, LocalBreaker] = {}
        self._degraded = ""
        self._resync = True
        self._new: list[str] = []
        # Breakers running on the defaults until the flusher reads their config.
        self._unconfigured: list[str] = []
        self._notes: queue.SimpleQueue[Transition] = queue.SimpleQueue()
        self._backlog: list[Transition] = []
        self._reset_threads()

    def _reset_threads(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- what breakers and callers use ----------------------------------------

    def breaker(self, name: str) -> LocalBreaker:
        """This process's breaker ``name``, made on first use."""
        found = self.breakers.get(name)
        return found if found is not None else self._add(name)

    def _add(self, name: str) -> LocalBreaker:
        if not NAME_RE.fullmatch(name):
            raise ValidationFailed({"name": ["Use 1-100 of A-Z a-z 0-9 _ . : -"]})
        with self._lock:
            found = self.breakers.get(name)
            if found is None:
                found = LocalBreaker(name, self._first_config(name), self)
                # The hot path reads without a lock: one item assignment is atomic
                # under the GIL, and the flusher iterates over a copy made in C.
                # (Copying the dict on every add cost O(n) each: seconds of CPU for
                # a process meeting 10,000 breakers.)
                self.breakers[name] = found
                self._new.append(name)
            self._start()
        return found

    def _first_config(self, name: str) -> BreakerConfig:
        """The stored config, read now unless that would block an event loop or
        Redis is away: then the defaults, and the flusher reads it (hold ``_lock``)."""
        if not self._degraded and not _in_event_loop():
            try:
                return self.fleet.load_config(name) or BreakerConfig()
            except redis.RedisError as exc:
                self._set_degraded(exc)
        self._unconfigured.append(name)
        self.wake()
        return BreakerConfig()

    def connected(self) -> bool:
        return not self._degraded

    def wake(self) -> None:
        self._wake.set()

    def permit(self, breaker: LocalBreaker) -> bool:
        if not self._degraded:
            try:
                reply = self.fleet.permit(breaker.name, breaker.config)
            except redis.RedisError as exc:
                self._set_degraded(exc)
            else:
                self._adopt(breaker, reply)
                return bool(reply.extra)
        return breaker.local_permit()

    def transitioned(
        self, breaker: LocalBreaker, from_state: State, to: State, reason: str
    ) -> None:
        self._note(breaker.name, from_state.value, to.value, reason, "process")

    def adopt_now(self, name: str, reply: Reply) -> None:
        """Take a reply a service got (an operator's action) without waiting."""
        breaker = self.breakers.get(name)
        if breaker is not None:
            breaker.adopt(reply)

    def health(self) -> AgentHealth:
        return AgentHealth(bool(self._degraded), self._degraded, len(self.breakers))

    # -- threads --------------------------------------------------------------

    def _start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        for target, label in (
            (self._run_flusher, "flush"),
            (self._run_listener, "listen"),
        ):
            thread = threading.Thread(
                target=target, name=f"breakers-{label}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5) -> None:
        """Stop both threads after a last flush (shutdown, tests)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def forget_threads(self) -> None:
        """In a forked child (Celery prefork): the parent's threads did not come along."""
        self._reset_threads()
        self._resync = True

    def _run_flusher(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self.cycle()
        self.cycle()

    def cycle(self) -> None:
        """One round: read configs not read at first use, register new breakers,
        flush outcomes, persist transitions.

        Each step fails on its own: a database outage must not stop the flushes.
        """
        steps = [self._configure, self._flush]
        if self.persist:
            steps = [
                self._configure,
                self._register_new,
                self._flush,
                self._write_notes,
            ]
        for step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - the thread must survive anything
                log.warning("breakers.agent_step_failed", error=_describe(exc))
        if self.persist:
            connection.close()

    def _run_listener(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except redis.RedisError as exc:
                self._set_degraded(exc)
                self._stop.wait(self.interval)

    def _listen(self) -> None:
        client = redis.Redis.from_url(
            self.fleet.url, socket_connect_timeout=TIMEOUT, health_check_interval=1
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.fleet.channel)
            # Transitions published while we were not subscribed: resync all.
            self._resync = True
            self.wake()
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    pubsub.check_health()
                else:
                    self._on_message(message["data"])
        finally:
            pubsub.close()
            client.close()

    def _on_message(self, data: bytes) -> None:
        message = json.loads(data)
        breaker = self.breakers.get(message.get("name", ""))
        if breaker is None:
            return
        if "config" in message:
            breaker.apply_config(BreakerConfig.from_mapping(message["config"]))
        else:
            breaker.adopt(Reply.from_message(message))

    # -- the flusher's work ---------------------------------------------------

    def _flush(self) -> None:
        resync, self._resync = self._resync, False
        batches = []
        calls = _console_series()
        for breaker in list(self.breakers.values()):
            if not (resync or breaker.touched):
                continue
            batch, proposal = breaker.take_batch()
            if calls:
                _calls_record(breaker, batch)
            if resync or proposal or batch[1] or batch[4]:
                batches.append((breaker, batch, proposal))
        if not batches and not (resync and self._degraded):
            return
        try:
            replies = self.fleet.record_many(
                [(b.name, b.config, batch, why) for b, batch, why in batches]
            )
            if not batches:
                self.fleet.client.ping()
        except redis.RedisError as exc:
            for breaker, _, proposal in batches:
                breaker.restore_proposal(proposal)
            self._set_degraded(exc)
            return
        self._set_connected()
        for (breaker, _, _), reply in zip(batches, replies, strict=True):
            self._adopt(breaker, reply)

    def _adopt(self, breaker: LocalBreaker, reply: Reply) -> None:
        breaker.adopt(reply)
        if reply.from_state:
            self._note(
                breaker.name, reply.from_state, reply.state.value, reply.reason, "fleet"
            )
            self.wake()

    def _note(
        self, name: str, from_state: str, to: str, reason: str, origin: str
    ) -> None:
        log.info(
            "breaker.transitioned", breaker=name, to=to, reason=reason, origin=origin
        )
        if self.persist:
            at = timezone.now()
            self._notes.put(
                Transition(name, from_state, to, reason, origin, at, current_trace_id())
            )

    def _configure(self) -> None:
        if self._degraded:
            return  # the flush finds out when Redis is back; the next cycle reads
        with self._lock:
            names, self._unconfigured = self._unconfigured, []
        if not names:
            return
        try:
            stored = self.fleet.load_configs(names)
        except redis.RedisError as exc:
            with self._lock:
                self._unconfigured.extend(names)
            self._set_degraded(exc)
            return
        for name, config in stored.items():
            if config is not None and config != self.breakers[name].config:
                self.breakers[name].apply_config(config)

    def _register_new(self) -> None:
        from apps.breakers.services import breakers_register

        with self._lock:
            names, self._new = self._new, []
        if not names:
            return
        try:
            configs = breakers_register(names=names)
        except Exception:
            with self._lock:
                self._new.extend(names)
            raise
        for name, config in configs.items():
            if config != self.breakers[name].config:
                self.breakers[name].apply_config(config)
        self._push_configs(configs)

    def _push_configs(self, configs: dict[str, BreakerConfig]) -> None:
        """Store in Redis the configs that differ there (two round trips)."""
        if self._degraded:
            return
        try:
            stored = self.fleet.load_configs(list(configs))
            changed = {
                name: config
                for name, config in configs.items()
                if stored[name] != config
            }
            if changed:
                self.fleet.store_configs(changed)
        except redis.RedisError as exc:
            self._set_degraded(exc)

    def _write_notes(self) -> None:
        from apps.breakers.services import breaker_transitions_record

        while not self._notes.empty():
            self._backlog.append(self._notes.get())
        if not self._backlog:
            return
        notes, self._backlog = self._backlog, []
        try:
            breaker_transitions_record(transitions=notes)
        except Exception:
            self._backlog = notes[-MAX_NOTES:]
            raise

    def _set_degraded(self, exc: BaseException) -> None:
        reason = _describe(exc)
        if not self._degraded:
            log.warning("breakers.degraded", reason=reason)
        self._degraded = reason
        self._resync = True

    def _set_connected(self) -> None:
        if self._degraded:
            log.info("breakers.reconnected")
        self._degraded = ""


def _calls_record(breaker: LocalBreaker, batch: tuple[int, int, int, int, int]) -> None:
    """The interval's outcomes (the batch's and those of phases ended since) as
    ``breaker.calls`` samples, the non-zero ones: success and failure split the
    counted calls, slow counts the slow ones of either, rejected the calls
    refused while open. Recorded whether Redis takes the batch or not."""
    calls, failures, slow, rejected = breaker.take_spent()
    calls, failures, slow = calls + batch[1], failures + batch[2], slow + batch[3]
    counts = {
        "success": calls - failures,
        "failure": failures,
        "slow": slow,
        "rejected": rejected,
    }
    for outcome, count in counts.items():
        if count:
            tags = {"breaker": breaker.name, "outcome": outcome}
            metrics.record(CALLS_METRIC, count, tags)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_default: Agent | None = None
_default_lock = threading.Lock()


def _console_series() -> bool:
    """Whether flushes record ``breaker.calls`` (a process without Django settings,
    such as a bare agent in a script, records nothing and keeps flushing)."""
    try:
        return bool(settings.OPSCONSOLE_METRICS_CONSOLE_SERIES)
    except ImproperlyConfigured:
        return False


def default_agent() -> Agent:
    """This process's agent on the configured Redis (made on first use)."""
    global _default  # one agent per process
    agent = _default
    if agent is None:
        with _default_lock:
            if _default is None:
                fleet = Fleet(settings.REDIS_URL, settings.OPSCONSOLE_REDIS_PREFIX)
                _default = Agent(fleet)
            agent = _default
    return agent


def stop_default() -> None:
    """Stop this process's agent threads, if it has an agent (shutdown, tests)."""
    if _default is not None:
        _default.stop()


def _after_fork() -> None:
    if _default is not None:
        _default.forget_threads()


os.register_at_fork(after_in_child=_after_fork)
