"""Attempts whose worker died mid-heal (SIGKILL, OOM, host lost): nobody finishes
them, so once a live worker surely would have, they are failed as lost. The lost
attempt keeps its number, so it counts against the policy's max attempts."""

from datetime import datetime, timedelta

import structlog
from django.db import transaction

from apps.core.services import audit_record
from apps.healing.models import HealingAttempt, Outcome
from apps.healing.policy import attempt_lost_after
from apps.healing.services.common import SYSTEM, publish_on_commit

log = structlog.get_logger(__name__)

LOST = "worker lost: still running {age:.0f} s after it started (limit {limit:g} s)"


def attempts_lost_fail(*, now: datetime, policy_id: int | None = None) -> int:
    """Fail every attempt left running past its limit ("worker lost"); how many."""
    shortest = timedelta(seconds=attempt_lost_after(timeout=0))
    running = HealingAttempt.objects.filter(
        outcome=Outcome.RUNNING, started_at__lte=now - shortest
    ).select_related("policy__component")
    if policy_id is not None:
        running = running.filter(policy_id=policy_id)
    failed = 0
    for attempt in running[:500]:
        limit = attempt_lost_after(timeout=attempt.policy.timeout_seconds)
        if attempt.started_at <= now - timedelta(seconds=limit):
            failed += _fail_lost(attempt, now=now, limit=limit)
    return failed


@transaction.atomic
def _fail_lost(attempt: HealingAttempt, *, now: datetime, limit: float) -> int:
    age = (now - attempt.started_at).total_seconds()
    output = LOST.format(age=age, limit=limit)
    # Conditional: a worker that finishes at this very moment keeps its outcome.
    running = HealingAttempt.objects.filter(pk=attempt.pk, outcome=Outcome.RUNNING)
    if not running.update(outcome=Outcome.FAILED, finished_at=now, output=output):
        return 0
    policy = attempt.policy
    log.warning(
        "heal.attempt_lost",
        component_id=attempt.component_id,
        attempt=attempt.number,
        attempt_id=attempt.pk,
    )
    audit_record(
        actor=None,
        action="healing.attempt_lost",
        source=SYSTEM,
        target=policy,
        after={"attempt": attempt.number, "outcome": Outcome.FAILED.value},
        reason=output,
    )
    publish_on_commit(
        policy, "attempt_finished", attempt=attempt.number, outcome="failed", lost=True
    )
    return 1
