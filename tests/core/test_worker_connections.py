"""A worker keeps its PostgreSQL connections across tasks and replaces a broken one."""

import secrets

import pytest
import redis
from django.conf import settings

from opsconsole.celery import app
from tests.core.db_tasks import END_OWN_BACKEND, NOTE_PID
from tests.procs import celery_worker, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _pids(client: redis.Redis, key: str, count: int) -> list[int]:
    return wait_until(
        lambda: (
            (pids := [int(p) for p in client.lrange(key, 0, -1)])
            and len(pids) >= count
            and pids
        ),
        timeout=30,
        what=f"{count} tasks to note their backend",
    )


def test_worker__many_tasks__one_connection_per_process_broken_one_replaced(tmp_path):
    client = redis.Redis.from_url(settings.REDIS_URL)
    queue = f"dbconn-{secrets.token_hex(3)}"
    key = f"{settings.OPSCONSOLE_REDIS_PREFIX}test:{queue}"
    env = {
        "CELERY_WORKER_INCLUDE": "tests.core.db_tasks",
        "CELERY_WORKER_QUEUES": queue,
    }
    with celery_worker(tmp_path, name="dbconn", **env):
        # Given a two-process worker that ran 20 tasks touching the database
        for _ in range(20):
            app.send_task(NOTE_PID, args=[key], queue=queue)
        before = _pids(client, key, 20)

        # When PostgreSQL ends the connections under it, then more tasks run
        for _ in range(4):
            app.send_task(END_OWN_BACKEND, queue=queue)
        for _ in range(10):
            app.send_task(NOTE_PID, args=[key], queue=queue)
        after = _pids(client, key, 30)[20:]
    client.delete(key)

    # Then the 20 tasks shared at most one connection per process (a new backend
    # per task before), and the later ones ran on new, working connections
    assert len(set(before)) <= 2
    assert len(after) == 10
    assert set(after) - set(before)
