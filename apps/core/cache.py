"""Django's Redis cache with one bounded connection pool per process.

Django keeps a cache object per thread and per async context (``caches`` is an
asgiref ``Local``), and its Redis client keeps a pool per object: every live socket's
session lookup made a pool of its own and held its connection for the socket's life,
so 1,000 sockets meant 1,000 Redis connections from one daphne. Here every object
with the same location and options uses one client (and its pools) per process; the
settings make that pool a bounded, blocking one. The clients are forgotten in a forked
child: a pool must not cross a fork.
"""

import os
import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis import ConnectionPool

_clients: dict[str, RedisCacheClient] = {}
_lock = threading.Lock()


def _forget_clients() -> None:
    global _lock
    _clients.clear()
    # Another thread may have held the lock at the fork; the child has no such thread.
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_clients)


class _EagerPoolsClient(RedisCacheClient):
    """Makes its pools up front: threads sharing it would each make one on first use."""

    # Set by Django's __init__; the stubs leave them out.
    _servers: list[str]
    _pools: dict[int, ConnectionPool]
    _pool_class: type[ConnectionPool]
    _pool_options: dict[str, Any]

    def __init__(self, servers: list[str], **options: Any) -> None:
        super().__init__(servers, **options)
        for index, url in enumerate(self._servers):
            self._pools[index] = self._pool_class.from_url(url, **self._pool_options)


class SharedPoolRedisCache(RedisCache):
    """``RedisCache`` whose client is shared by every instance with the same
    location and options in this process."""

    _servers: list[str]
    _options: dict[str, Any]

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._client_key = repr((self._servers, sorted(self._options.items())))

    @property
    def _cache(self) -> RedisCacheClient:
        client = _clients.get(self._client_key)
        if client is None:
            with _lock:
                client = _clients.get(self._client_key)
                if client is None:
                    client = _EagerPoolsClient(self._servers, **self._options)
                    _clients[self._client_key] = client
        return client
