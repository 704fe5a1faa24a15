"""Checkers, one module per kind, each ``async def check(config, timeout)``.

``KINDS`` maps a component's kind to its config schema and check function.
"""

from apps.components.checkers import (
    celery_queue,
    celery_workers,
    command,
    dns,
    heartbeat,
    http,
    postgres,
    python,
    redis,
    tcp,
    tls,
)
from apps.components.checkers.base import CheckerKind, CheckOutcome

KINDS: dict[str, CheckerKind] = {
    module.KIND.name: module.KIND
    for module in (
        http,
        tcp,
        postgres,
        redis,
        command,
        celery_workers,
        python,
        heartbeat,
        dns,
        tls,
        celery_queue,
    )
}

__all__ = ["KINDS", "CheckOutcome", "CheckerKind"]
