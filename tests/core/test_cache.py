"""The cache (and so the sessions) holds one bounded Redis pool per process."""

import asyncio
import contextvars
import gc
import json
import os
import pickle
import threading
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches

from apps.core.roles import VIEWER
from tests.core.redis_conns import listening_pid, redis_connections
from tests.core.test_settings import BASE_ENV, manage
from tests.factories import make_user
from tests.live.sockets import live_connect, session_cookie, subscribe

THREADS = 60
CONTEXTS = 200
SOCKETS = 50
# The console's own background clients (flag snapshot, metrics) may connect while
# a test runs; anything past this is the cache's.
OTHER_CLIENTS = 2


def _hammer(n: int, ready: threading.Barrier, hold: threading.Barrier) -> None:
    cache = caches["default"]
    for i in range(20):
        cache.set(f"t{n}", i)
        assert cache.get(f"t{n}") == i
    ready.wait(timeout=30)
    hold.wait(timeout=30)  # the thread (and its cache object) lives while counted


def test_cache__many_threads__connections_stay_within_the_bound():
    assert settings.CACHE_MAX_CONNECTIONS < THREADS
    gc.collect()  # earlier tests' cache objects (and connections) go first
    before = redis_connections(os.getpid())
    ready = threading.Barrier(THREADS + 1)
    hold = threading.Barrier(THREADS + 1)
    threads = [
        threading.Thread(target=_hammer, args=(n, ready, hold)) for n in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    ready.wait(timeout=30)
    during = redis_connections(os.getpid())
    hold.wait(timeout=30)
    for thread in threads:
        thread.join(timeout=30)

    assert during - before <= settings.CACHE_MAX_CONNECTIONS + OTHER_CLIENTS
    assert caches["default"].get_many([f"t{n}" for n in range(THREADS)]) == {
        f"t{n}": 19 for n in range(THREADS)
    }


async def test_cache__many_async_contexts__share_one_pool():
    release = asyncio.Event()
    looked_up = 0

    async def session_lookup(n: int) -> object:
        nonlocal looked_up
        # As a socket's session lookup: inside sync_to_async, in the socket's context.
        await sync_to_async(caches["default"].set)(f"c{n}", n)
        value = await sync_to_async(lambda: caches["default"].get(f"c{n}"))()
        looked_up += 1
        await release.wait()  # the context (and its cache object) lives while counted
        return value

    gc.collect()  # earlier tests' cache objects (and connections) go first
    before = redis_connections(os.getpid())
    # Each in a context of its own that has never looked up the cache, as a socket's.
    tasks = [
        asyncio.create_task(session_lookup(n), context=contextvars.Context())
        for n in range(CONTEXTS)
    ]
    async with asyncio.timeout(30):
        while looked_up < CONTEXTS:
            await asyncio.sleep(0.01)
    during = redis_connections(os.getpid())
    release.set()
    values = await asyncio.gather(*tasks)

    assert values == list(range(CONTEXTS))
    assert during - before <= settings.CACHE_MAX_CONNECTIONS + OTHER_CLIENTS


def test_cache__forked_child__gets_its_own_pool_parent_keeps_its_connection():
    cache = caches["default"]
    cache.set("fork", "parent")
    parent_client = cache._cache
    parent_connection = parent_client.get_client().client_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            child = caches["default"]
            child.set("fork", "child")
            report = [
                child._cache is not parent_client,
                child._cache.get_client().client_id(),
                child.get("fork"),
            ]
            os.write(write, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        own_client, child_connection, child_read = json.loads(pipe.read())
    os.waitpid(pid, 0)

    assert own_client, "the child made its own client and pool"
    assert child_connection != parent_connection
    assert child_read == "child"
    assert cache._cache is parent_client
    assert parent_client.get_client().client_id() == parent_connection
    assert cache.get("fork") == "child"


def test_cache__set_with_timeout__same_keys_ttl_and_values_as_django():
    cache = caches["default"]
    cache.set("shape", {"a": [1, 2]}, timeout=100)
    cache.set("count", 5)
    cache.incr("count", 2)

    raw = redis.Redis.from_url(settings.REDIS_URL)
    key = f"{settings.OPSCONSOLE_REDIS_PREFIX}cache:1:shape"
    stored = pickle.loads(raw.get(key))  # noqa: S301 - the test wrote it just above
    assert stored == {"a": [1, 2]}
    assert 95 <= raw.ttl(key) <= 100
    assert raw.get(f"{settings.OPSCONSOLE_REDIS_PREFIX}cache:1:count") == b"7"
    assert cache.get("shape") == {"a": [1, 2]}


POOL_BOUND = (
    "from django.core.cache import caches;"
    "print(caches['default']._cache.get_client().connection_pool.max_connections)"
)


def test_cache_max_connections__from_environment__bounds_the_pool():
    env = {**BASE_ENV, "DJANGO_DEBUG": "true", "OPSCONSOLE_CACHE_MAX_CONNECTIONS": "7"}
    result = manage("shell", "--no-imports", "-c", POOL_BOUND, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7"


def test_cache_max_connections__zero__start_up_error():
    env = {**BASE_ENV, "DJANGO_DEBUG": "true", "OPSCONSOLE_CACHE_MAX_CONNECTIONS": "0"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "OPSCONSOLE_CACHE_MAX_CONNECTIONS=0 is out of range" in result.stderr


@pytest.fixture
def viewer_cookie() -> str:
    return session_cookie(make_user(role=VIEWER))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_live_sockets__fifty_authenticated__daphne_redis_connections_flat(
    web, viewer_cookie
):
    daphne_pid = listening_pid(urlsplit(web).port)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(live_connect(web, cookie=viewer_cookie))
        await subscribe(first, "flags")
        before = redis_connections(daphne_pid)
        for _ in range(SOCKETS):
            ws = await stack.enter_async_context(
                live_connect(web, cookie=viewer_cookie)
            )
            await subscribe(ws, "flags")
        during = redis_connections(daphne_pid)

    assert during - before <= settings.CACHE_MAX_CONNECTIONS + OTHER_CLIENTS
