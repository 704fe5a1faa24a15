"""Recording a batch's outcomes: results, state machine, state changes, claims."""

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection, models, transaction

from apps import live
from apps.components.checkers.base import CheckOutcome
from apps.components.models import Component, ComponentState, HealthResult, StateChange
from apps.components.selectors import (
    DependencyView,
    component_dependencies,
    component_ids_in_maintenance,
)
from apps.components.state import DOWN, Streak, state_next
from apps.components.transitions import Transition, transitions_emit
from apps.core.trace import current_trace_id

_STATE_FIELDS = [
    "state",
    "since",
    "consecutive_failures",
    "consecutive_successes",
    "incident_started_at",
    "last_status",
    "last_latency_ms",
    "last_message",
    "last_checked_at",
]

# What recording reads of a component: loading the rest too (config JSON, tags,
# four timestamps) made a steady batch of 1,000 ~10 % slower to record.
_COMPONENT_FIELDS = ("id", "slug", "failure_threshold", "success_threshold")


@transaction.atomic
def results_record(
    *, claim_token: UUID, outcomes: Mapping[int, CheckOutcome], now: datetime
) -> list[Transition]:
    """Write the outcomes of components still held under ``claim_token``; transitions."""
    held = {
        component.pk: component
        for component in Component.objects.select_for_update()
        .filter(id__in=list(outcomes), claim_token=claim_token)
        .only(*_COMPONENT_FIELDS)
        .order_by("id")
    }
    if not held:
        return []
    transitions = _record(held, outcomes, now)
    Component.objects.filter(id__in=held).update(claimed_until=None, claim_token=None)
    return transitions


@transaction.atomic
def result_record_pushed(
    *, component_id: int, outcome: CheckOutcome, now: datetime
) -> list[Transition]:
    """Write one outcome that was pushed, not claimed (a heartbeat); transitions."""
    held = {
        component.pk: component
        for component in Component.objects.select_for_update()
        .filter(pk=component_id)
        .only(*_COMPONENT_FIELDS)
    }
    return _record(held, {component_id: outcome}, now) if held else []


def _record(
    held: Mapping[int, Component],
    outcomes: Mapping[int, CheckOutcome],
    now: datetime,
) -> list[Transition]:
    states = {
        state.component_id: state
        for state in ComponentState.objects.select_for_update()
        .filter(component_id__in=held)
        .order_by("component_id")
    }
    missing = [ComponentState(component_id=pk) for pk in held if pk not in states]
    states.update({state.component_id: state for state in missing})
    maintenance = component_ids_in_maintenance(component_ids=held, now=now)
    trace_id = current_trace_id()
    _results_insert(held, outcomes, maintenance, now, trace_id)
    transitions = _apply(held, states, outcomes, maintenance, now)
    # Before saving states: opening or closing an incident updates them.
    changes = _changes(transitions, states, trace_id)
    ComponentState.objects.bulk_create(missing)
    _states_save([s for s in states.values() if s not in missing])
    StateChange.objects.bulk_create(changes)
    transitions = [
        replace(transition, state_change_id=change.pk)
        for transition, change in zip(transitions, changes, strict=True)
    ]
    transaction.on_commit(lambda: _after_commit(transitions, states))
    return transitions


def _results_insert(
    held: Iterable[int],
    outcomes: Mapping[int, CheckOutcome],
    maintenance: set[int],
    now: datetime,
    trace_id: str,
) -> None:
    """One ``INSERT … SELECT FROM unnest(…)`` for the batch's results: building a
    model instance per result for ``bulk_create`` cost more than the insert."""
    ids = list(held)
    picked = [outcomes[pk] for pk in ids]
    table = HealthResult._meta.db_table
    sql = (
        f'INSERT INTO "{table}" (component_id, status, latency_ms, message, details,'  # noqa: S608 - names from the model, values bound
        " checked_at, in_maintenance, trace_id)"
        " SELECT v.c, v.s, v.l, v.m, v.d::jsonb, %s, v.i, %s"
        " FROM unnest(%s::bigint[], %s::text[], %s::float8[], %s::text[],"
        " %s::text[], %s::boolean[]) AS v(c, s, l, m, d, i)"
    )
    params: list[Any] = [
        now,
        trace_id,
        ids,
        [outcome.status for outcome in picked],
        [max(0.0, outcome.latency_ms) for outcome in picked],
        [outcome.message for outcome in picked],
        [json.dumps(outcome.details) for outcome in picked],
        [pk in maintenance for pk in ids],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _states_save(states: list[ComponentState]) -> None:
    """One ``UPDATE … FROM unnest(…)`` for all rows: ``bulk_update`` builds a CASE
    per field and row, which cost 75 % of a batch's time in profiles."""
    if not states:
        return
    fields = [_concrete(name) for name in _STATE_FIELDS]
    key = _concrete(ComponentState._meta.pk.name)
    columns = [key.column] + [field.column for field in fields]
    casts = [key.db_type(connection)] + [field.db_type(connection) for field in fields]
    assignments = ", ".join(f'"{c}" = v."{c}"' for c in columns[1:])
    arrays = ", ".join(f"%s::{cast}[]" for cast in casts)
    quoted = ", ".join(f'"{c}"' for c in columns)
    sql = (
        f'UPDATE "{ComponentState._meta.db_table}" AS s SET {assignments} '  # noqa: S608 - names from the model, values bound
        f'FROM unnest({arrays}) AS v({quoted}) WHERE s."{key.column}" = v."{key.column}"'
    )
    params = [[state.pk for state in states]] + [
        [getattr(state, field.attname) for state in states] for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _concrete(name: str) -> "models.Field[Any, Any]":
    field = ComponentState._meta.get_field(name)
    assert isinstance(field, models.Field)  # noqa: S101 - state columns are concrete
    return field


def _apply(
    held: Mapping[int, Component],
    states: Mapping[int, ComponentState],
    outcomes: Mapping[int, CheckOutcome],
    maintenance: set[int],
    now: datetime,
) -> list[Transition]:
    deps = component_dependencies(component_ids=held)
    down = set(deps.down)
    transitions = []
    for pk in _dependencies_first(held, deps):
        transition = _apply_one(
            held[pk],
            states[pk],
            outcomes[pk],
            dependency_down=_dependency_down(deps, down, pk),
            in_maintenance=pk in maintenance,
            now=now,
        )
        if transition is not None:
            transitions.append(transition)
        (down.add if states[pk].state in DOWN else down.discard)(pk)
    return transitions


def _dependencies_first(ids: Iterable[int], deps: DependencyView) -> list[int]:
    """``ids`` ordered so a dependency's new state in this batch counts."""
    pending, order = set(ids), []
    while pending:
        ready = [pk for pk in pending if not deps.edges.get(pk, frozenset()) & pending]
        # A dependency cycle: take the rest as it comes.
        ready = sorted(ready or pending)
        order.extend(ready)
        pending.difference_update(ready)
    return order


def _dependency_down(deps: DependencyView, down: set[int], pk: int) -> bool:
    return bool(deps.edges.get(pk, frozenset()) & down)


def _apply_one(
    component: Component,
    state: ComponentState,
    outcome: CheckOutcome,
    *,
    dependency_down: bool,
    in_maintenance: bool,
    now: datetime,
) -> Transition | None:
    before = state.state
    after = state_next(
        current=Streak(
            state.state, state.consecutive_failures, state.consecutive_successes
        ),
        status=outcome.status,
        failure_threshold=component.failure_threshold,
        success_threshold=component.success_threshold,
        dependency_down=dependency_down,
    )
    state.state = after.state
    state.consecutive_failures = after.failures
    state.consecutive_successes = after.successes
    state.last_status = outcome.status
    state.last_latency_ms = outcome.latency_ms
    state.last_message = outcome.message
    state.last_checked_at = now
    if after.state == before:
        return None
    state.since = now
    return Transition(
        component.pk,
        component.slug,
        before,
        after.state,
        now,
        in_maintenance,
        outcome.message,
    )


def _changes(
    transitions: list[Transition],
    states: Mapping[int, ComponentState],
    trace_id: str,
) -> list[StateChange]:
    changes = []
    for transition in transitions:
        state = states[transition.component_id]
        opened = transition.to_state in DOWN and transition.from_state not in DOWN
        closed = transition.from_state in DOWN and transition.to_state not in DOWN
        duration = None
        if opened:
            state.incident_started_at = transition.at
        elif closed and state.incident_started_at is not None:
            duration = transition.at - state.incident_started_at
            state.incident_started_at = None
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


def _after_commit(
    transitions: list[Transition], states: Mapping[int, ComponentState]
) -> None:
    for transition in transitions:
        state = states[transition.component_id]
        live.publish(
            "components",
            {
                "slug": transition.slug,
                "state": transition.to_state,
                "from_state": transition.from_state,
                "since": transition.at.isoformat(),
                "latency_ms": state.last_latency_ms,
                "message": state.last_message,
            },
            key=transition.slug,
        )
    transitions_emit(transitions)
