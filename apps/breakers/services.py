"""Writes of the breakers app. Every door (admin, API, CLI) and the agent call these.

Operators' actions change the fleet state in Redis (atomic Lua) inside the database
transaction that records the BreakerEvent and the audit row, so a Redis failure
writes nothing; the live publish and this process's adoption run on commit.
"""

from typing import Any

import redis
import structlog
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction

from apps import live
from apps.breakers.agent import Transition, default_agent
from apps.breakers.config import BreakerConfig, State
from apps.breakers.fleet import Reply
from apps.breakers.models import Breaker, BreakerEvent
from apps.core.exceptions import DependencyUnavailable, NotFound, ValidationFailed
from apps.core.models import AuditEvent
from apps.core.services import audit_record
from apps.core.trace import current_trace_id

log = structlog.get_logger(__name__)

# What each operator action does to the fleet state.
ACTIONS = {
    "force_open": State.FORCED_OPEN,
    "force_close": State.CLOSED,
    "reset": State.CLOSED,
    "disable": State.DISABLED,
}


def breaker_register(*, name: str) -> BreakerConfig:
    """Make sure breaker ``name`` has a row (first use anywhere); its config."""
    return breakers_register(names=[name])[name]


# Names per statement when registering many (a worker meeting 10,000 checks).
REGISTER_CHUNK = 1000


def breakers_register(*, names: list[str]) -> dict[str, BreakerConfig]:
    """Make sure each breaker of ``names`` has a row; their configs.

    A few statements per thousand names, not one or two per name: a process that
    starts among 10,000 components meets 10,000 breakers in its first minute."""
    configs: dict[str, BreakerConfig] = {}
    unique = list(dict.fromkeys(names))
    for start in range(0, len(unique), REGISTER_CHUNK):
        chunk = unique[start : start + REGISTER_CHUNK]
        known = {b.name: b for b in Breaker.objects.filter(name__in=chunk)}
        missing = [name for name in chunk if name not in known]
        if missing:
            Breaker.objects.bulk_create(
                [Breaker(name=name) for name in missing], ignore_conflicts=True
            )
            known.update((b.name, b) for b in Breaker.objects.filter(name__in=missing))
            for name in missing:
                log.info("breaker.registered", breaker=name)
        configs.update((name, breaker.config()) for name, breaker in known.items())
    return configs


@transaction.atomic
def breaker_transitions_record(*, transitions: list[Transition]) -> None:
    """Persist transitions decided by the fleet or a process; publish them on commit."""
    events = []
    for item in transitions:
        breaker, _ = Breaker.objects.get_or_create(name=item.name)
        events.append(
            BreakerEvent(
                breaker=breaker,
                from_state=item.from_state,
                to_state=item.to_state,
                reason=item.reason,
                origin=item.origin,
                at=item.at,
                trace_id=item.trace_id,
            )
        )
    BreakerEvent.objects.bulk_create(events)
    payloads = [(event.breaker.name, _payload(event)) for event in events]
    transaction.on_commit(lambda: _publish(payloads))


def breaker_act(
    *,
    name: str,
    action: str,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> BreakerEvent:
    """Force-open, force-close, reset or disable breaker ``name`` fleet-wide."""
    if action not in ACTIONS:
        raise ValidationFailed({"action": [f"Use one of {', '.join(ACTIONS)}."]})
    if not reason.strip():
        raise ValidationFailed(
            {"reason": ["Say why: it is recorded in the audit log."]}
        )
    return _breaker_set(
        name=name, action=action, actor=actor, reason=reason.strip(), source=source
    )


@transaction.atomic
def _breaker_set(
    *,
    name: str,
    action: str,
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> BreakerEvent:
    breaker = Breaker.objects.select_for_update().filter(name=name).first()
    if breaker is None:
        raise NotFound(f"no breaker {name!r}", extra={"name": name})
    agent = default_agent()
    to = ACTIONS[action]
    try:
        reply = agent.fleet.set_state(name, breaker.config(), to, f"{action}: {reason}")
    except redis.RedisError as exc:
        raise DependencyUnavailable(
            "Redis is unreachable: a breaker cannot be changed fleet-wide now.",
            code="breakers_redis_unavailable",
        ) from exc
    event = BreakerEvent.objects.create(
        breaker=breaker,
        from_state=reply.from_state,
        to_state=to.value,
        reason=reason,
        origin=BreakerEvent.Origin.OPERATOR,
        actor=actor,
        trace_id=current_trace_id(),
    )
    audit_record(
        actor=actor,
        action=f"breaker.{action}",
        source=source,
        target=breaker,
        before={"state": reply.from_state},
        after={"state": to.value},
        reason=reason,
    )
    payloads = [(name, _payload(event))]
    transaction.on_commit(lambda: _after_set(name, reply, payloads))
    return event


def _after_set(name: str, reply: Reply, payloads: list[tuple[str, Any]]) -> None:
    default_agent().adopt_now(name, reply)
    _publish(payloads)


@transaction.atomic
def breaker_configure(
    *,
    name: str,
    changes: dict[str, Any],
    actor: User | None,
    reason: str,
    source: AuditEvent.Source,
) -> Breaker:
    """Change breaker ``name``'s config (validated); every process applies it."""
    unknown = sorted(set(changes) - set(BreakerConfig().as_dict()))
    if unknown:
        raise ValidationFailed({field: ["unknown field"] for field in unknown})
    breaker = Breaker.objects.select_for_update().filter(name=name).first()
    if breaker is None:
        raise NotFound(f"no breaker {name!r}", extra={"name": name})
    before = breaker.config().as_dict()
    for field, value in changes.items():
        setattr(breaker, field, value)
    _full_clean(breaker)
    breaker.save()
    config = breaker.config()
    audit_record(
        actor=actor,
        action="breaker.configured",
        source=source,
        target=breaker,
        before=before,
        after=config.as_dict(),
        reason=reason,
    )
    transaction.on_commit(lambda: _push_config(name, config))
    return breaker


def _push_config(name: str, config: BreakerConfig) -> None:
    try:
        default_agent().fleet.store_config(name, config)
    except redis.RedisError as exc:
        log.warning("breaker.config_push_failed", breaker=name, error=str(exc))


def _full_clean(breaker: Breaker) -> None:
    try:
        breaker.full_clean()
    except DjangoValidationError as exc:
        fields = {name: list(msgs) for name, msgs in exc.message_dict.items()}
        raise ValidationFailed(fields) from exc


def _payload(event: BreakerEvent) -> dict[str, Any]:
    return {
        "name": event.breaker.name,
        "from": event.from_state,
        "state": event.to_state,
        "reason": event.reason,
        "origin": event.origin,
        "at": event.at.isoformat(),
    }


def _publish(payloads: list[tuple[str, dict[str, Any]]]) -> None:
    for name, payload in payloads:
        live.publish("breakers", payload, key=name)
