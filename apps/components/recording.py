"""Recording a batch's outcomes: results, state machine, state changes, claims.

A batch costs four statements whatever its size: one that locks the components
(still held under the claim) and reads their states, maintenance candidates and
dependencies; one that writes every result and state and releases the claims; the
transitions' state changes (only when there are any); the commit. Values travel as
one JSON document per statement and array ids as one literal, so the statements'
text never changes with the batch: building the ORM's ``IN (…)`` lists, a model
instance per row and client-side array literals was most of a steady batch's CPU.
"""

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction

from apps import live, metrics
from apps.components.checkers.base import CheckOutcome
from apps.components.models import (
    Component,
    ComponentState,
    HealthResult,
    MaintenanceWindow,
    State,
    StateChange,
    Status,
)
from apps.components.selectors import CHECK_LATENCY_METRIC, CHECK_UP_METRIC
from apps.components.state import DOWN, Streak, state_next
from apps.components.transitions import Transition, transitions_emit
from apps.core.trace import current_trace_id

_COMPONENT = Component._meta.db_table
_STATE = ComponentState._meta.db_table
_RESULT = HealthResult._meta.db_table
_WINDOW = MaintenanceWindow._meta.db_table
_DEPENDS = Component.depends_on.through._meta.db_table
_DOWN_SQL = ", ".join(f"'{state}'" for state in sorted(DOWN))

# Locks the components (in id order, like every writer of a component) and reads
# what the state machine needs. States are written only here, under that lock.
# A window that may be open now is only a candidate: a recurring one is decided by
# its cron (``MaintenanceWindow.is_open``).
_HELD_SQL = f"""
SELECT c.id, c.slug, c.failure_threshold, c.success_threshold,
    s.component_id IS NOT NULL, s.state, s.since, s.consecutive_failures,
    s.consecutive_successes, s.incident_started_at,
    EXISTS (SELECT 1 FROM "{_WINDOW}" w WHERE w.component_id = c.id
        AND w.starts_at <= %(now)s AND (w.ends_at IS NULL OR w.ends_at > %(now)s)),
    ARRAY(SELECT d.to_component_id FROM "{_DEPENDS}" d
        WHERE d.from_component_id = c.id),
    ARRAY(SELECT d.to_component_id FROM "{_DEPENDS}" d
        JOIN "{_STATE}" ds ON ds.component_id = d.to_component_id
        WHERE d.from_component_id = c.id AND ds.state IN ({_DOWN_SQL}))
FROM "{_COMPONENT}" c LEFT JOIN "{_STATE}" s ON s.component_id = c.id
WHERE c.id = ANY(%(ids)s::bigint[]) {{held}}
ORDER BY c.id FOR UPDATE OF c
"""  # noqa: S608 - names from the models, values bound
_CLAIMED = "AND c.claim_token = %(token)s"

_STATE_COLUMNS = {
    "component_id": "bigint",
    "state": "text",
    "since": "timestamptz",
    "consecutive_failures": "integer",
    "consecutive_successes": "integer",
    "incident_started_at": "timestamptz",
    "last_status": "text",
    "last_latency_ms": "float8",
    "last_message": "text",
    "last_checked_at": "timestamptz",
}
_STATE_NAMES = ", ".join(_STATE_COLUMNS)
_STATE_TYPES = ", ".join(f"{name} {kind}" for name, kind in _STATE_COLUMNS.items())
_STATE_SET = ", ".join(f"{name} = EXCLUDED.{name}" for name in list(_STATE_COLUMNS)[1:])
# Results, states (an upsert: a component may lack its state row) and, for a
# claimed batch, the claims released, in one statement.
_WRITE_SQL = f"""
WITH results AS (
    INSERT INTO "{_RESULT}" (component_id, status, latency_ms, message, details,
        checked_at, in_maintenance, trace_id)
    SELECT r.c, r.s, r.l, r.m, r.d, %(now)s, r.i, %(trace_id)s
    FROM json_to_recordset(%(results)s::json)
        AS r(c bigint, s text, l float8, m text, d jsonb, i boolean)
){{release}}
INSERT INTO "{_STATE}" ({_STATE_NAMES})
SELECT {_STATE_NAMES} FROM json_to_recordset(%(states)s::json) AS v({_STATE_TYPES})
ON CONFLICT (component_id) DO UPDATE SET {_STATE_SET}
"""  # noqa: S608 - names from the models, values bound
_RELEASE = f""", released AS (
    UPDATE "{_COMPONENT}" SET claimed_until = NULL, claim_token = NULL
    WHERE id = ANY(%(ids)s::bigint[])
)"""  # noqa: S608 - names from the models, values bound


@dataclass(slots=True)
class _Held:
    """A locked component and its state, as the state machine changes it."""

    component_id: int
    slug: str
    failure_threshold: int
    success_threshold: int
    state: str
    since: datetime
    consecutive_failures: int
    consecutive_successes: int
    incident_started_at: datetime | None
    maybe_maintenance: bool
    depends_on: frozenset[int]
    last_status: str = ""
    last_latency_ms: float | None = None
    last_message: str = ""
    last_checked_at: datetime | None = None


@transaction.atomic
def results_record(
    *, claim_token: UUID, outcomes: Mapping[int, CheckOutcome], now: datetime
) -> list[Transition]:
    """Write the outcomes of components still held under ``claim_token``; transitions."""
    return _record(outcomes, now, claim_token=claim_token)


@transaction.atomic
def result_record_pushed(
    *, component_id: int, outcome: CheckOutcome, now: datetime
) -> list[Transition]:
    """Write one outcome that was pushed, not claimed (a heartbeat); transitions."""
    return _record({component_id: outcome}, now, claim_token=None)


def ids_literal(ids: Iterable[int]) -> str:
    """``ids`` as one PostgreSQL array literal (one parameter, constant SQL text)."""
    return "{" + ",".join(str(int(pk)) for pk in ids) + "}"


def _record(
    outcomes: Mapping[int, CheckOutcome], now: datetime, *, claim_token: UUID | None
) -> list[Transition]:
    held, down = _held(outcomes, now, claim_token)
    if not held:
        return []
    maintenance = _in_maintenance(held, now)
    trace_id = current_trace_id()
    transitions = _apply(held, outcomes, down, maintenance, now)
    # Before writing states: opening or closing an incident updates them.
    changes = _changes(transitions, held, trace_id)
    _write(held, outcomes, maintenance, now, trace_id, claim_token)
    StateChange.objects.bulk_create(changes)
    transitions = [
        replace(transition, state_change_id=change.pk)
        for transition, change in zip(transitions, changes, strict=True)
    ]
    transaction.on_commit(lambda: _after_commit(transitions, held))
    if settings.OPSCONSOLE_METRICS_CONSOLE_SERIES:
        transaction.on_commit(lambda: _checks_record(held, outcomes))
    return transitions


def _checks_record(
    held: Mapping[int, _Held], outcomes: Mapping[int, CheckOutcome]
) -> None:
    """Each committed result as two samples (issue #7), stamped when recorded,
    just after the batch's ``checked_at``: an explicit ``at`` takes record()'s
    validated path, ~6 µs a sample instead of ~0.8 µs."""
    for pk, row in held.items():
        outcome = outcomes[pk]
        tags = {"component": row.slug}
        up = 0.0 if outcome.status == Status.UNHEALTHY else 1.0
        metrics.record(CHECK_UP_METRIC, up, tags)
        if math.isfinite(outcome.latency_ms):
            metrics.record(CHECK_LATENCY_METRIC, max(0.0, outcome.latency_ms), tags)


def _held(
    outcomes: Mapping[int, CheckOutcome], now: datetime, claim_token: UUID | None
) -> tuple[dict[int, _Held], set[int]]:
    """The components locked (those still held under the claim, if one is given)
    and which of their dependencies are down now."""
    sql = _HELD_SQL.format(held=_CLAIMED if claim_token is not None else "")
    params: dict[str, Any] = {
        "now": now,
        "ids": ids_literal(outcomes),
        "token": claim_token,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    held: dict[int, _Held] = {}
    down: set[int] = set()
    for (pk, slug, failures_needed, successes_needed, has_state, state, since,
         failures, successes, incident, maybe_maintenance, deps, deps_down) in rows:  # fmt: skip
        held[pk] = _Held(
            pk,
            slug,
            failures_needed,
            successes_needed,
            state if has_state else State.UNKNOWN,
            since if has_state else now,
            failures if has_state else 0,
            successes if has_state else 0,
            incident,
            maybe_maintenance,
            frozenset(deps),
        )
        down.update(deps_down)
    return held, down


def _in_maintenance(held: Mapping[int, _Held], now: datetime) -> set[int]:
    candidates = [pk for pk, row in held.items() if row.maybe_maintenance]
    if not candidates:
        return set()
    windows = MaintenanceWindow.objects.filter(component_id__in=candidates)
    return {window.component_id for window in windows if window.is_open(now)}


def _write(
    held: Mapping[int, _Held],
    outcomes: Mapping[int, CheckOutcome],
    maintenance: set[int],
    now: datetime,
    trace_id: str,
    claim_token: UUID | None,
) -> None:
    results = [
        {
            "c": pk,
            "s": outcomes[pk].status,
            "l": max(0.0, outcomes[pk].latency_ms),
            "m": outcomes[pk].message,
            "d": outcomes[pk].details,
            "i": pk in maintenance,
        }
        for pk in held
    ]
    states = [
        {
            "component_id": row.component_id,
            "state": row.state,
            "since": row.since.isoformat(),
            "consecutive_failures": row.consecutive_failures,
            "consecutive_successes": row.consecutive_successes,
            "incident_started_at": _iso(row.incident_started_at),
            "last_status": row.last_status,
            "last_latency_ms": row.last_latency_ms,
            "last_message": row.last_message,
            "last_checked_at": _iso(row.last_checked_at),
        }
        for row in held.values()
    ]
    sql = _WRITE_SQL.format(release=_RELEASE if claim_token is not None else "")
    params: dict[str, Any] = {
        "now": now,
        "trace_id": trace_id,
        "results": _json(results),
        "states": _json(states),
        "ids": ids_literal(held),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _json(rows: list[dict[str, Any]]) -> str:
    """One JSON document; NaN and infinities as null, NUL characters dropped
    (PostgreSQL's json and text hold neither). The check is on the text, so the
    common case costs one dump."""
    text = json.dumps(rows, default=str)
    if "NaN" in text or "Infinity" in text or "\\u0000" in text:
        text = json.dumps(_clean(rows), default=str)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _apply(
    held: Mapping[int, _Held],
    outcomes: Mapping[int, CheckOutcome],
    down: set[int],
    maintenance: set[int],
    now: datetime,
) -> list[Transition]:
    transitions = []
    for pk in _dependencies_first(held):
        row = held[pk]
        transition = _apply_one(
            row,
            outcomes[pk],
            dependency_down=bool(row.depends_on & down),
            in_maintenance=pk in maintenance,
            now=now,
        )
        if transition is not None:
            transitions.append(transition)
        (down.add if row.state in DOWN else down.discard)(pk)
    return transitions


def _dependencies_first(held: Mapping[int, _Held]) -> list[int]:
    """The held ids ordered so a dependency's new state in this batch counts."""
    pending, order = set(held), []
    while pending:
        ready = [pk for pk in pending if not held[pk].depends_on & pending]
        # A dependency cycle: take the rest as it comes.
        ready = sorted(ready or pending)
        order.extend(ready)
        pending.difference_update(ready)
    return order


def _apply_one(
    row: _Held,
    outcome: CheckOutcome,
    *,
    dependency_down: bool,
    in_maintenance: bool,
    now: datetime,
) -> Transition | None:
    before = row.state
    after = state_next(
        current=Streak(row.state, row.consecutive_failures, row.consecutive_successes),
        status=outcome.status,
        failure_threshold=row.failure_threshold,
        success_threshold=row.success_threshold,
        dependency_down=dependency_down,
    )
    row.state = after.state
    row.consecutive_failures = after.failures
    row.consecutive_successes = after.successes
    row.last_status = outcome.status
    latency = outcome.latency_ms
    row.last_latency_ms = latency if math.isfinite(latency) else None
    # PostgreSQL's text holds no NUL; the transition's message goes to a state change.
    row.last_message = message = outcome.message.replace("\x00", "")
    row.last_checked_at = now
    if after.state == before:
        return None
    row.since = now
    return Transition(
        row.component_id,
        row.slug,
        before,
        after.state,
        now,
        in_maintenance,
        message,
    )


def _changes(
    transitions: list[Transition], held: Mapping[int, _Held], trace_id: str
) -> list[StateChange]:
    changes = []
    for transition in transitions:
        row = held[transition.component_id]
        opened = transition.to_state in DOWN and transition.from_state not in DOWN
        closed = transition.from_state in DOWN and transition.to_state not in DOWN
        duration = None
        if opened:
            row.incident_started_at = transition.at
        elif closed and row.incident_started_at is not None:
            duration = transition.at - row.incident_started_at
            row.incident_started_at = None
        changes.append(
            StateChange(
                component_id=transition.component_id,
                from_state=transition.from_state,
                to_state=transition.to_state,
                at=transition.at,
                in_maintenance=transition.in_maintenance,
                incident_opened=opened,
                incident_duration=duration,
                message=transition.message[:500],
                trace_id=trace_id,
            )
        )
    return changes


def _after_commit(transitions: list[Transition], held: Mapping[int, _Held]) -> None:
    items = []
    for transition in transitions:
        row = held[transition.component_id]
        payload = {
            "slug": transition.slug,
            "state": transition.to_state,
            "from_state": transition.from_state,
            "since": transition.at.isoformat(),
            "latency_ms": row.last_latency_ms,
            "message": row.last_message,
        }
        items.append((transition.slug, payload))
    live.publish_many("components", items)
    transitions_emit(transitions)
