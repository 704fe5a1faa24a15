"""Tasks with a known outcome, for the task outcome tests: a worker loads them with
``CELERY_WORKER_INCLUDE`` (Celery's own environment form of ``--include``)."""

import time

from celery import Task, shared_task

SUCCEEDS = "tests.live.succeeds"
FAILS = "tests.live.fails"
RETRIES_ONCE = "tests.live.retries_once"
HOLDS = "tests.live.holds"
RUNTIME_S = 0.2


@shared_task(name=SUCCEEDS)
def succeeds() -> str:
    time.sleep(RUNTIME_S)
    return "done"


@shared_task(name=FAILS)
def fails() -> None:
    raise RuntimeError("fails on purpose")


@shared_task(name=RETRIES_ONCE, bind=True, max_retries=1)
def retries_once(self: Task) -> str:
    if not self.request.retries:
        raise self.retry(countdown=0)
    return "done on the second run"


@shared_task(name=HOLDS)
def holds(seconds: float) -> None:
    """Keep a worker process busy for ``seconds``."""
    time.sleep(seconds)
