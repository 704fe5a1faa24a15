"""This process's Redis client for short commands, one connection pool per process.

A client made per call opens a connection per call (and a pool to hold it); under a
burst of dashboard snapshots that meant dozens of sockets. redis-py's pool notices a
fork and starts afresh in the child, so one cached client is safe in prefork workers.
"""

from functools import cache

import redis
from django.conf import settings


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_connect_timeout=1, socket_timeout=2, health_check_interval=30
    )


def shared_redis() -> redis.Redis:
    """The pooled client for ``settings.REDIS_URL`` (connect 1 s, commands 2 s)."""
    return _client(settings.REDIS_URL)
