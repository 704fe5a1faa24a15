"""One heal per component fleet-wide: a Redis lock with a TTL.

The TTL outlives the action's timeout, so a worker killed mid-heal frees the
component once it expires; release deletes the key only while it is still ours.
"""

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from django.conf import settings

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def lock_key(component_id: int) -> str:
    return f"{settings.OPSCONSOLE_REDIS_PREFIX}healing:lock:{component_id}"


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)


@contextmanager
def heal_lock(component_id: int, *, ttl_seconds: float) -> Iterator[bool]:
    """Hold the component's heal lock for the block; yields False if another does."""
    client = _client()
    token = secrets.token_hex(16)
    key = lock_key(component_id)
    held = bool(client.set(key, token, nx=True, px=int(ttl_seconds * 1000)))
    try:
        yield held
    finally:
        if held:
            client.eval(_RELEASE, 1, key, token)
        client.close()


def lock_ttl(component_id: int) -> float:
    """Seconds until the component's lock expires (0 when nobody holds it)."""
    client = _client()
    try:
        return max(0, int(client.pttl(lock_key(component_id)))) / 1000
    finally:
        client.close()
