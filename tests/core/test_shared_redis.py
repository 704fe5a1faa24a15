"""Short Redis commands share one pooled connection per process."""

from apps.core.redis import shared_redis
from apps.live.selectors import queues_latest, workers_latest


def test_shared_redis__many_snapshot_reads__one_connection():
    client = shared_redis()
    before = client.connection_pool._created_connections
    for _ in range(50):
        queues_latest()
        workers_latest()

    assert shared_redis() is client
    assert client.connection_pool._created_connections <= max(before, 1)


def test_shared_redis__other_url__its_own_client(settings):
    first = shared_redis()
    settings.REDIS_URL = settings.REDIS_URL.rsplit("/", 1)[0] + "/15"

    assert shared_redis() is not first
