"""Tasks for the worker connection tests: a worker loads them with
``CELERY_WORKER_INCLUDE`` (Celery's own environment form of ``--include``)."""

import redis
from celery import shared_task
from django.conf import settings
from django.db import connection

NOTE_PID = "tests.core.note_backend_pid"
END_OWN_BACKEND = "tests.core.end_own_backend"


@shared_task(name=NOTE_PID)
def note_backend_pid(key: str) -> None:
    """Append the PostgreSQL backend pid this task's queries ran on to ``key``."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone()
    redis.Redis.from_url(settings.REDIS_URL).rpush(key, pid)


@shared_task(name=END_OWN_BACKEND)
def end_own_backend() -> None:
    """Have PostgreSQL end this task's connection (as a restart or a kill would)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
