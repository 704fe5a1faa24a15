import sys
import threading
import time

import pytest
import redis

import apps.flags as flags
from apps.core.models import AuditEvent
from apps.flags import snapshot as snapshot_module
from apps.flags.engine import compile_snapshot
from apps.flags.services import flag_create, flag_toggle
from apps.flags.snapshot import SnapshotCache
from opsconsole.embedded import EmbeddedValkey, free_port
from tests.flags.builders import flag_data, snapshot_of
from tests.procs import Proc, child_env, wait_until

API = AuditEvent.Source.API

# A second process evaluating in a loop and printing each value it sees.
EVALUATOR = """
import time
import apps.flags as flags
last = None
while True:
    value = flags.is_enabled("checkout")
    if value != last:
        print("value", value, time.time(), flush=True)
        last = value
    time.sleep(0.005)
"""


def _seen(proc: Proc, value: bool) -> float | None:
    for line in proc.output().splitlines():
        parts = line.split()
        if parts[:2] == ["value", str(value)]:
            return float(parts[2])
    return None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_flag_toggle__other_process_evaluating__sees_new_value_within_a_second(
    tmp_path,
):
    flag_create(key="checkout", data=flag_data(), actor=None, reason="", source=API)
    proc = Proc(
        "evaluator",
        [sys.executable, "manage.py", "shell", "-c", EVALUATOR],
        child_env(OPSCONSOLE_DB_POOL="false"),
        tmp_path / "evaluator.log",
    )
    try:
        wait_until(lambda: _seen(proc, True), timeout=60, what="first evaluation")
        # The subscriber thread starts with the first evaluation; give it its subscribe.
        wait_until(
            lambda: _subscribers() >= 1, timeout=10, what="the evaluator's subscription"
        )
        changed_at = time.time()
        flag_toggle(key="checkout", enabled=False, actor=None, reason="", source=API)

        seen_at = wait_until(
            lambda: _seen(proc, False), timeout=10, what=f"new value:\n{proc.output()}"
        )
    finally:
        proc.stop()
    assert seen_at - changed_at < 1.0


# A process that loads its snapshot, then forks as Celery's prefork pool does (its
# database connections closed first): the child must not keep the parent's
# snapshot and thread, but load afresh and subscribe on its own. The parent forks
# once its subscriber is listening: a thread caught mid-import or mid-connect at
# fork time leaves its locks held in the child, which no at-fork hook can undo.
FORKING = """
import os, time
import redis
from django.conf import settings
from django.db import connections
import apps.flags as flags
from apps.flags.snapshot import cache, invalidation_channel
client = redis.Redis.from_url(settings.REDIS_URL)
def subscribers():
    return client.pubsub_numsub(invalidation_channel())[0][1]
before = subscribers()
flags.is_enabled("checkout")
deadline = time.monotonic() + 30
while subscribers() <= before:
    assert time.monotonic() < deadline, "the parent never subscribed"
    time.sleep(0.01)
client.close()
connections.close_all()
parent = os.getpid()
pid = os.fork()
who = "child" if pid == 0 else "parent"
if pid == 0:
    print(f"child fresh {cache.snapshot is None}", flush=True)
last = None
while pid != 0 or os.getppid() == parent:
    value = flags.is_enabled("checkout")
    if value != last:
        # One string, one write: the snapshot thread's log lines go to the same
        # stdout and could land between print()'s separate arguments.
        print(f"{who} {value} {time.time()}", flush=True)
        last = value
    time.sleep(0.005)
"""


def _seen_by(proc: Proc, who: str, value: bool) -> bool:
    return f"{who} {value} " in proc.output()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_flag_toggle__forked_child_process__reloads_and_sees_new_value(tmp_path):
    flag_create(key="checkout", data=flag_data(), actor=None, reason="", source=API)
    subscribed = _subscribers()
    proc = Proc(
        "forking",
        [sys.executable, "manage.py", "shell", "-c", FORKING],
        child_env(OPSCONSOLE_DB_POOL="false"),
        tmp_path / "forking.log",
    )
    try:
        for who in ("parent", "child"):
            wait_until(
                lambda who=who: _seen_by(proc, who, True),
                timeout=60,
                what=f"the {who}'s first evaluation:\n{proc.output()}",
            )
        # The parent subscribed before forking; the child subscribes on its own.
        wait_until(
            lambda: _subscribers() >= subscribed + 2,
            timeout=10,
            what="both subscriptions",
        )
        flag_toggle(key="checkout", enabled=False, actor=None, reason="", source=API)

        for who in ("parent", "child"):
            wait_until(
                lambda who=who: _seen_by(proc, who, False),
                timeout=10,
                what=f"the {who} seeing the change:\n{proc.output()}",
            )
    finally:
        proc.stop()
    assert "child fresh True" in proc.output()


def _subscribers() -> int:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        counts = client.pubsub_numsub(snapshot_module.invalidation_channel())
    finally:
        client.close()
    return int(counts[0][1]) if counts else 0


@pytest.mark.fault
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_snapshot__redis_stopped__serves_last_snapshot_degraded_and_polls_database(
    client, settings, monkeypatch, tmp_path
):
    valkey = EmbeddedValkey(tmp_path / "valkey", free_port())
    valkey.start()
    settings.REDIS_URL = valkey.url
    flag_create(key="checkout", data=flag_data(), actor=None, reason="", source=API)
    reader = SnapshotCache(poll_seconds=0.2)
    monkeypatch.setattr(snapshot_module, "cache", reader)
    try:
        assert reader.current().evaluate("checkout", {}).value is True
        wait_until(lambda: _subscribers() == 1, timeout=10, what="subscription")
        valkey.stop()

        wait_until(lambda: reader.health().degraded, timeout=10, what="degraded")
        assert reader.current().evaluate("checkout", {}).value is True
        flags_check = client.get("/readyz").json()["checks"]["flags"]
        assert (flags_check["status"], bool(flags_check["error"])) == ("warn", True)

        # Written by "another process": this one only learns of it by polling.
        monkeypatch.setattr(snapshot_module, "cache", SnapshotCache())
        flag_toggle(key="checkout", enabled=False, actor=None, reason="", source=API)
        wait_until(
            lambda: reader.current().evaluate("checkout", {}).value is False,
            timeout=10,
            what="the polled change",
        )

        valkey.start()
        wait_until(lambda: not reader.health().degraded, timeout=15, what="recovery")
    finally:
        reader.stop()
        valkey.stop()


@pytest.mark.fault
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_snapshot__process_starts_with_redis_down__loads_from_postgresql(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    flag_create(key="checkout", data=flag_data(), actor=None, reason="", source=API)
    cache = SnapshotCache(poll_seconds=0.2)
    try:
        assert cache.current().evaluate("checkout", {}).value is True
        health = wait_until(
            lambda: cache.health() if cache.health().degraded else None,
            timeout=10,
            what="degraded",
        )
    finally:
        cache.stop()
    assert health.loaded
    assert "ConnectionError" in health.reason


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_snapshot__first_evaluation_inside_event_loop__loads_without_error(
    monkeypatch,
):
    from asgiref.sync import sync_to_async
    from django.db import connection

    def create() -> None:
        try:
            flag_create(
                key="checkout", data=flag_data(), actor=None, reason="", source=API
            )
        finally:
            connection.close()  # the executor thread outlives the test

    await sync_to_async(create)()
    cache = SnapshotCache(poll_seconds=0.2)
    monkeypatch.setattr(snapshot_module, "cache", cache)
    try:
        assert flags.is_enabled("checkout") is True
    finally:
        cache.stop()


class _SignallingLock:
    """A lock that says when someone starts waiting for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting = threading.Event()

    def __enter__(self) -> "_SignallingLock":
        self.waiting.set()
        self.lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


@pytest.mark.parametrize("built_meanwhile", [True, False])
def test_refresh__same_fingerprint_built_while_waiting__no_second_build(
    monkeypatch, built_meanwhile
):
    # Given a process whose own write is rebuilding (holding the build lock) when
    # its subscriber hears of that write
    builds = []
    monkeypatch.setattr(
        snapshot_module, "build_snapshot", lambda: builds.append(1) or snapshot_of()
    )
    monkeypatch.setattr("apps.flags.selectors.flags_state_version", lambda: "v2")
    cache = SnapshotCache()
    cache.snapshot = compile_snapshot([], [], version="v1")
    lock = cache._build_lock = _SignallingLock()
    lock.lock.acquire()
    subscriber = threading.Thread(target=cache.refresh)
    subscriber.start()
    try:
        assert lock.waiting.wait(10), "the refresh never reached the build lock"
        # When that build finishes at the fingerprint the subscriber read
        if built_meanwhile:
            cache.snapshot = compile_snapshot([], [], version="v2")
    finally:
        lock.lock.release()
        subscriber.join(10)
    # Then the subscriber does not build again (and does when it was not built)
    assert len(builds) == (0 if built_meanwhile else 1)


def test_flags_changed__snapshot_loaded__others_told_before_rebuilding_here(
    monkeypatch,
):
    steps = []
    cache = SnapshotCache()
    cache.snapshot = compile_snapshot([], [], version="v1")
    monkeypatch.setattr(snapshot_module, "cache", cache)
    monkeypatch.setattr(cache, "reload", lambda: steps.append("rebuilt here"))

    # Nothing really goes out: this process's own subscriber would hear it and
    # rebuild its snapshot while a later test has swapped in its own.
    def told(self, channel, message):
        steps.append("told others")
        return 0

    monkeypatch.setattr(redis.Redis, "publish", told)

    snapshot_module.flags_changed()

    assert steps == ["told others", "rebuilt here"]
