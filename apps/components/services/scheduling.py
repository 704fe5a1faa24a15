"""Writes of the scheduler: claiming due checks, running batches, pruning results."""

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from celery import current_app
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from apps import flags
from apps.components.checkers.base import CheckOutcome
from apps.components.checkers.runner import CheckJob, run_jobs
from apps.components.models import Component, HealthResult, Kind
from apps.components.recording import ids_literal, results_record
from apps.components.services.common import component_locked
from apps.core.exceptions import Conflict
from apps.core.models import AuditEvent
from apps.core.services import audit_record

log = structlog.get_logger(__name__)

RUN_BATCH_TASK = "components.run_batch"
# Added to a claim beyond timeout * attempts: time to write the batch's results.
CLAIM_MARGIN_SECONDS = 10
# The console switch an operator turns off to stop every scheduled check.
CHECKS_SWITCH = "opsconsole.checks.enabled"
# A dispatch tick stops after this many batches; the next tick takes the rest.
MAX_BATCHES_PER_TICK = 50
# A tick (every second) also claims what falls due before the next one, in slices
# of due times at most this wide, each sent to start when its last check falls due:
# a check starts at most a slice late, waits for no tick, and no worker process is
# held idle waiting for a due time.
LOOKAHEAD_SECONDS = 1.0
SLICE_SECONDS = 0.25


def components_dispatch_due(*, now: datetime, batch_size: int = 100) -> int:
    """Claim due components in batches and enqueue a check batch for each; the count.

    Nothing is claimed while the console switch ``opsconsole.checks.enabled`` is off
    (a manual "check now" still runs)."""
    if not flags.is_enabled(CHECKS_SWITCH, default=True):
        return 0
    total = 0
    for _ in range(MAX_BATCHES_PER_TICK):
        claimed = _claim_batch(now=now, batch_size=batch_size)
        total += claimed
        if claimed < batch_size:
            break
    return total


_TABLE = Component._meta.db_table
# One statement claims a batch: the due rows (by the next tick, or held by a claim
# that expired because its worker died), locked with SKIP LOCKED so dispatchers
# never wait on each other, get their next run and claim expiry counted from their
# due time (their next_check_at, or now if that has passed or the claim expired: a
# lost check runs again now), with jitter (≤ 10 % of the interval, ≤ 5 s) so
# components due together spread out. Heartbeats are pushed, not claimed.
_CLAIM_SQL = f"""
UPDATE "{_TABLE}" AS c SET
    next_check_at = d.base + make_interval(secs => c.interval_seconds
        + random() * LEAST(c.interval_seconds * 0.1, 5)),
    claimed_until = d.base
        + make_interval(secs => c.timeout_seconds * (c.retries + 1) + %(margin)s),
    claim_token = %(token)s
FROM (
    SELECT id, next_check_at AS due_at, claimed_until AS held_until,
        CASE WHEN claimed_until IS NULL THEN GREATEST(next_check_at, %(now)s)
            ELSE %(now)s END AS base
    FROM "{_TABLE}"
    WHERE enabled AND NOT paused AND kind <> %(heartbeat)s
        AND ((next_check_at <= %(horizon)s AND claimed_until IS NULL)
            OR claimed_until <= %(now)s)
    ORDER BY next_check_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS d
WHERE c.id = d.id
RETURNING c.id, d.due_at, d.held_until
"""  # noqa: S608 - the model's table, values bound


@transaction.atomic
def _claim_batch(*, now: datetime, batch_size: int) -> int:
    token = uuid.uuid4()
    params: dict[str, Any] = {
        "now": now,
        "horizon": now + timedelta(seconds=LOOKAHEAD_SECONDS),
        "heartbeat": Kind.HEARTBEAT.value,
        "limit": batch_size,
        "margin": CLAIM_MARGIN_SECONDS,
        "token": token,
    }
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, params)
        rows: list[tuple[int, datetime, datetime | None]] = sorted(
            cursor.fetchall(), key=lambda row: row[1]
        )
    for slice_ids, last_due in _slices(rows, now):
        _enqueue_on_commit(slice_ids, token, starts_at=last_due)
    return len(rows)


def _slices(
    rows: list[tuple[int, datetime, datetime | None]], now: datetime
) -> list[tuple[list[int], float | None]]:
    """``rows`` (id, due, claim expiry; by due) as batches to send: those due by now
    (or whose claim expired) at once, the rest in slices of due times at most
    ``SLICE_SECONDS`` wide, each with its last due time (epoch seconds)."""
    overdue = [pk for pk, due, claimed in rows if claimed is not None or due <= now]
    ahead = [
        (pk, due.timestamp())
        for pk, due, claimed in rows
        if claimed is None and due > now
    ]
    slices: list[tuple[list[int], float | None]] = [(overdue, None)] if overdue else []
    group: list[int] = []
    first = last = 0.0
    for pk, due in ahead:
        if group and due - first > SLICE_SECONDS:
            slices.append((group, last))
            group = []
        if not group:
            first = due
        group.append(pk)
        last = due
    if group:
        slices.append((group, last))
    return slices


def _enqueue_on_commit(
    ids: list[int], token: uuid.UUID, *, starts_at: float | None = None
) -> None:
    """Send the batch after commit; with ``starts_at`` (epoch seconds), to start
    then (never later than the lookahead from the send)."""
    transaction.on_commit(lambda: _send([ids, str(token)], starts_at))


def _send(args: list[object], starts_at: float | None) -> None:
    eta = None
    if starts_at is not None:
        # Capped: ``now`` may have come from another clock than this process's.
        start = min(starts_at, time.time() + LOOKAHEAD_SECONDS)
        eta = datetime.fromtimestamp(start, UTC) if start > time.time() else None
    current_app.send_task(RUN_BATCH_TASK, args=args, eta=eta)


@transaction.atomic
def component_check_now(
    *, slug: str, actor: User | None, source: AuditEvent.Source
) -> Component:
    """Run the component's check now, outside its schedule; Conflict if one runs."""
    locked = component_locked(slug)
    if locked.kind == Kind.HEARTBEAT:
        raise Conflict(
            f"{slug!r} is a heartbeat: it is pushed, not checked.",
            code="push_component",
        )
    now = timezone.now()
    if locked.claimed_until is not None and locked.claimed_until > now:
        raise Conflict(
            f"A check of {slug!r} is already running.", code="check_in_progress"
        )
    attempts = locked.retries + 1
    locked.claim_token = uuid.uuid4()
    locked.claimed_until = now + timedelta(
        seconds=locked.timeout_seconds * attempts + CLAIM_MARGIN_SECONDS
    )
    locked.save(update_fields=["claim_token", "claimed_until", "updated_at"])
    audit_record(
        actor=actor, action="component.check_requested", source=source, target=locked
    )
    _enqueue_on_commit([locked.pk], locked.claim_token)
    return locked


def components_run_batch(
    *,
    component_ids: Sequence[int],
    claim_token: uuid.UUID,
) -> int:
    """Check the components still held under ``claim_token`` and record the results."""
    began = time.perf_counter()
    jobs = _claim_renew(component_ids=component_ids, claim_token=claim_token)
    if not jobs:
        return 0
    checking = time.perf_counter()
    outcomes: dict[int, CheckOutcome] = dict(
        zip(
            (job.component_id for job in jobs),
            run_jobs(jobs),
            strict=True,
        )
    )
    recording = time.perf_counter()
    transitions = results_record(
        claim_token=claim_token, outcomes=outcomes, now=timezone.now()
    )
    log.info(
        "component.batch_checked",
        checks=len(outcomes),
        transitions=len(transitions),
        claim_ms=round((checking - began) * 1000, 1),
        check_ms=round((recording - checking) * 1000, 1),
        record_ms=round((time.perf_counter() - recording) * 1000, 1),
    )
    return len(outcomes)


# A batch renews the claims of its components that could expire before it has run
# and written its results (checks' worst case plus this much slack); the others
# are read, not written: most batches start when their slice falls due, well
# inside their claim, and rewriting every row (a new version of the widest
# table's rows) was a third of each check's writes.
RENEW_SLACK_SECONDS = CLAIM_MARGIN_SECONDS / 2
_JOB_COLUMNS = "id, kind, config::text, timeout_seconds, retries, slug"
_RENEW_SQL = f"""
WITH renewed AS (
    UPDATE "{Component._meta.db_table}" SET claimed_until = %(now)s
        + make_interval(secs => timeout_seconds * (retries + 1) + %(margin)s)
    WHERE id = ANY(%(ids)s::bigint[]) AND claim_token = %(token)s
        AND claimed_until < %(now)s
            + make_interval(secs => timeout_seconds * (retries + 1) + %(slack)s)
    RETURNING {_JOB_COLUMNS}
)
SELECT * FROM renewed
UNION ALL
SELECT {_JOB_COLUMNS} FROM "{Component._meta.db_table}"
WHERE id = ANY(%(ids)s::bigint[]) AND claim_token = %(token)s
    AND claimed_until >= %(now)s
        + make_interval(secs => timeout_seconds * (retries + 1) + %(slack)s)
"""  # noqa: S608 - the model's table, values bound


def _claim_renew(
    *, component_ids: Sequence[int], claim_token: uuid.UUID
) -> list[CheckJob]:
    """The checks of the components still held under ``claim_token``, each claim
    made to last the batch's run from now where it might not (one statement).

    A batch that waited in the queue must not see its claim expire mid-run (and the
    checks claimed and run again); a claim is never shortened (one taken ahead counts
    from the due time). A claim with time to spare is only read: nobody can take it
    over before it expires, and the statement's snapshot keeps the two halves apart.
    Configs come as their stored JSON text: the runner validates each text once."""
    params: dict[str, Any] = {
        "now": timezone.now(),
        "margin": CLAIM_MARGIN_SECONDS,
        "slack": RENEW_SLACK_SECONDS,
        "ids": ids_literal(component_ids),
        "token": claim_token,
    }
    with connection.cursor() as cursor:
        cursor.execute(_RENEW_SQL, params)
        return [CheckJob(*row) for row in cursor.fetchall()]


def results_prune(*, older_than: datetime, batch_size: int = 5000) -> int:
    """Delete results checked before ``older_than``, in short batches; the count."""
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                HealthResult.objects.filter(checked_at__lt=older_than).values_list(
                    "id", flat=True
                )[:batch_size]
            )
            if ids:
                HealthResult.objects.filter(id__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted
