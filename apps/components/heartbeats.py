"""Writes for heartbeat (push) components: pings in, missed pings noticed.

Follows Healthchecks.io's ping semantics (the contract in
shared/peer-suites/healthchecks-ping-semantics.json): ``start`` opens a run, a
success or failure closes it with a duration when the ``rid`` matches, and a ping
that does not come within its grace, or a run that outlives it, is a failure.
Results go through the same recording path (and state machine) as polled checks.
"""

import enum
from datetime import datetime
from functools import cache
from uuid import UUID

import redis
import structlog
from django.conf import settings
from django.db import transaction

from apps.components.checkers.base import HEALTHY, UNHEALTHY, CheckOutcome
from apps.components.checkers.heartbeat import Config, next_expected
from apps.components.models import Heartbeat
from apps.components.recording import result_record_pushed
from apps.core.exceptions import NotFound

log = structlog.get_logger(__name__)

# Pings per uuid per window; Healthchecks' hosted service allows about 5 a minute,
# a start + success pair per run needs 2, and retries a few more.
PING_RATE_LIMIT = 30
PING_RATE_WINDOW_SECONDS = 60
PING_BODY_LIMIT = 10_000


class PingAction(enum.StrEnum):
    SUCCESS = "success"
    START = "start"
    FAIL = "fail"


def ping_rate_allowed(*, ping_uuid: UUID, now: datetime) -> bool:
    """Whether another ping for ``ping_uuid`` fits this window; open if Redis is not."""
    window = int(now.timestamp()) // PING_RATE_WINDOW_SECONDS
    key = f"{settings.OPSCONSOLE_REDIS_PREFIX}ping:{ping_uuid}:{window}"
    try:
        pipe = _redis(settings.REDIS_URL).pipeline()
        pipe.incr(key)
        pipe.expire(key, PING_RATE_WINDOW_SECONDS * 2)
        count = int(pipe.execute()[0])
    except redis.RedisError as exc:
        # Losing a ping to a Redis outage would raise a false alarm; limit nothing.
        log.warning("heartbeat.rate_limit_unavailable", error=str(exc))
        return True
    return count <= PING_RATE_LIMIT


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


@transaction.atomic
def heartbeat_ping(
    *,
    ping_uuid: UUID,
    action: PingAction,
    now: datetime,
    rid: UUID | None = None,
    exit_status: int | None = None,
    body: str = "",
) -> Heartbeat:
    """Record a ping; NotFound for an unknown uuid. Pings to a paused one are ignored."""
    heartbeat = (
        Heartbeat.objects.select_for_update()
        .select_related("component")
        .filter(ping_uuid=ping_uuid)
        .first()
    )
    if heartbeat is None:
        raise NotFound("not found", code="heartbeat_not_found")
    component = heartbeat.component
    if component.paused or not component.enabled:
        log.info("heartbeat.ping_ignored", component_id=component.pk, action=action)
        return heartbeat
    config = Config.model_validate(component.config)
    if action == PingAction.START:
        _start(heartbeat, rid=rid, now=now)
    else:
        outcome = _finish(heartbeat, config, action=action, rid=rid, now=now)
        exited = f" (exit status {exit_status})" if exit_status is not None else ""
        details = {**outcome.details, "exit_status": exit_status, "body": body}
        pushed = CheckOutcome(
            outcome.status, outcome.latency_ms, outcome.message + exited, details
        )
        result_record_pushed(component_id=component.pk, outcome=pushed, now=now)
    heartbeat.alert_after = _alert_after(heartbeat, config)
    heartbeat.save()
    return heartbeat


def _start(heartbeat: Heartbeat, *, rid: UUID | None, now: datetime) -> None:
    heartbeat.last_start_at = now
    heartbeat.last_start_rid = rid
    heartbeat.long_run_reported = False


def _finish(
    heartbeat: Heartbeat,
    config: Config,
    *,
    action: PingAction,
    rid: UUID | None,
    now: datetime,
) -> CheckOutcome:
    """Close the run the ping belongs to; the outcome to record."""
    started = heartbeat.last_start_at
    duration = None
    if started is not None and rid == heartbeat.last_start_rid:
        duration = now - started
    if duration is not None or action == PingAction.FAIL or rid is None:
        heartbeat.last_start_at = heartbeat.last_start_rid = None
        heartbeat.long_run_reported = False
    if duration is not None:
        heartbeat.last_duration = duration
    heartbeat.last_ping_at = now
    heartbeat.expected_at = next_expected(config, after=now)
    status = HEALTHY if action == PingAction.SUCCESS else UNHEALTHY
    message = f"{action} ping" + (f" after a {duration} run" if duration else "")
    ms = duration.total_seconds() * 1000 if duration else 0.0
    seconds = duration.total_seconds() if duration else None
    return CheckOutcome(status, ms, message, {"ping": action, "duration_s": seconds})


def _alert_after(heartbeat: Heartbeat, config: Config) -> datetime | None:
    """The next instant the heartbeat can turn out late."""
    candidates = []
    if heartbeat.expected_at is not None:
        candidates.append(heartbeat.expected_at + config.grace)
    if heartbeat.last_start_at is not None and not heartbeat.long_run_reported:
        candidates.append(heartbeat.last_start_at + config.grace)
    return min(candidates, default=None)


def heartbeats_evaluate(*, now: datetime, batch_size: int = 100) -> int:
    """Record a failure for each heartbeat that is late at ``now``; the count."""
    total = 0
    while True:
        reported = _evaluate_batch(now=now, batch_size=batch_size)
        total += reported
        if reported < batch_size:
            return total


@transaction.atomic
def _evaluate_batch(*, now: datetime, batch_size: int) -> int:
    # SKIP LOCKED: a second evaluator (or a ping in flight) takes other rows.
    late = list(
        Heartbeat.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("component")
        .filter(alert_after__lte=now, component__enabled=True, component__paused=False)
        .order_by("alert_after")[:batch_size]
    )
    for heartbeat in late:
        config = Config.model_validate(heartbeat.component.config)
        message = _lateness(heartbeat, config, now=now)
        heartbeat.alert_after = _alert_after(heartbeat, config)
        heartbeat.save(update_fields=_LATE_FIELDS)
        if message:
            outcome = CheckOutcome(UNHEALTHY, 0.0, message, {"ping": "missing"})
            result_record_pushed(
                component_id=heartbeat.component_id, outcome=outcome, now=now
            )
    return len(late)


_LATE_FIELDS = ["expected_at", "alert_after", "long_run_reported"]


def _lateness(heartbeat: Heartbeat, config: Config, *, now: datetime) -> str:
    """What is late at ``now``, marking it reported; empty when nothing is."""
    started = heartbeat.last_start_at
    if started and not heartbeat.long_run_reported and now >= started + config.grace:
        heartbeat.long_run_reported = True
        return f"running too long: started {started.isoformat()}, no end within grace"
    expected = heartbeat.expected_at
    if expected is not None and now >= expected + config.grace:
        # One failure per missed ping; the next one is due a period from now.
        heartbeat.expected_at = next_expected(config, after=now)
        return f"ping missing: expected by {expected.isoformat()}"
    return ""
