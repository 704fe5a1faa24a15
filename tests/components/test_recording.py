"""Recording a batch: results, states, transitions and claims from one call."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.components.checkers.base import CheckOutcome
from apps.components.models import (
    Component,
    ComponentState,
    HealthResult,
    StateChange,
)
from apps.components.recording import results_record
from tests.components.helpers import make_component

pytestmark = pytest.mark.django_db


def _claimed(*components: Component) -> uuid.UUID:
    token = uuid.uuid4()
    Component.objects.filter(pk__in=[c.pk for c in components]).update(
        claim_token=token, claimed_until=timezone.now() + timedelta(minutes=1)
    )
    return token


def test_results_record__claimed_batch__results_states_transitions_claims_released(
    django_capture_on_commit_callbacks,
):
    # Given one component that turns unhealthy on one failure and one that stays up
    failing = make_component(failure_threshold=1)
    steady = make_component()
    token = _claimed(failing, steady)
    outcomes = {
        failing.pk: CheckOutcome("unhealthy", 12.5, "HTTP 500", {"status_code": 500}),
        steady.pk: CheckOutcome("healthy", 3.0, "HTTP 200"),
    }
    now = timezone.now()

    # When the batch is recorded
    with (
        django_capture_on_commit_callbacks(execute=True),
        CaptureQueriesContext(connection) as queries,
    ):
        transitions = results_record(claim_token=token, outcomes=outcomes, now=now)

    # Then each result, state and the transitions are written, the claims released
    results = {r.component_id: r for r in HealthResult.objects.all()}
    assert (results[failing.pk].status, results[failing.pk].latency_ms) == (
        "unhealthy",
        12.5,
    )
    assert results[failing.pk].details == {"status_code": 500}
    assert results[steady.pk].status == "healthy"
    states = {s.component_id: s for s in ComponentState.objects.all()}
    assert (states[failing.pk].state, states[failing.pk].consecutive_failures) == (
        "unhealthy",
        1,
    )
    assert states[failing.pk].incident_started_at == now
    assert (states[steady.pk].state, states[steady.pk].last_checked_at) == (
        "healthy",
        now,
    )
    by_slug = {t.slug: (t.from_state, t.to_state) for t in transitions}
    assert by_slug == {
        failing.slug: ("unknown", "unhealthy"),
        steady.slug: ("unknown", "healthy"),
    }
    assert StateChange.objects.filter(component=failing, incident_opened=True).exists()
    assert not Component.objects.filter(claim_token__isnull=False).exists()
    # ...and the components are locked without loading their configs
    locked = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    component_lock = next(sql for sql in locked if "components_component" in sql)
    assert '"config"' not in component_lock.split("FROM")[0]


def test_results_record__claim_taken_over__writes_nothing():
    component = make_component()
    _claimed(component)
    outcomes = {component.pk: CheckOutcome("healthy", 1.0)}

    transitions = results_record(
        claim_token=uuid.uuid4(), outcomes=outcomes, now=timezone.now()
    )

    assert transitions == []
    assert not HealthResult.objects.exists()


def test_results_record__batch__fixed_statement_count():
    # Given 50 claimed components, two of them turning unhealthy
    components = [make_component() for _ in range(48)]
    components += [make_component(failure_threshold=1) for _ in range(2)]
    token = _claimed(*components)
    outcomes = {c.pk: CheckOutcome("healthy", 2.0, "HTTP 200") for c in components}
    outcomes.update(
        {c.pk: CheckOutcome("unhealthy", 9.0, "HTTP 503") for c in components[-2:]}
    )

    # When the batch is recorded
    with CaptureQueriesContext(connection) as queries:
        results_record(claim_token=token, outcomes=outcomes, now=timezone.now())

    # Then it took the lock-and-read, the write and the state changes' insert
    # (plus the transaction's own statements), whatever the batch's size
    statements = [
        q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]
    ]
    assert len(statements) == 3, statements
    assert HealthResult.objects.count() == 50
    assert StateChange.objects.filter(to_state="unhealthy").count() == 2
    assert ComponentState.objects.filter(last_status="healthy").count() == 48


def test_results_record__odd_values__stored_cleaned_not_lost():
    # Given a check whose outcome carries NUL characters and non-finite numbers
    component = make_component()
    token = _claimed(component)
    outcome = CheckOutcome(
        "degraded",
        float("nan"),
        "body\x00with a NUL",
        {"ratio": float("inf"), "text": "a\x00b", "at": timezone.now()},
    )

    # When it is recorded
    results_record(
        claim_token=token, outcomes={component.pk: outcome}, now=timezone.now()
    )

    # Then the result and the state are written, with what PostgreSQL can hold
    result = HealthResult.objects.get(component=component)
    assert (result.status, result.message) == ("degraded", "bodywith a NUL")
    assert result.details["ratio"] is None
    assert result.details["text"] == "ab"
    assert isinstance(result.details["at"], str)
    state = ComponentState.objects.get(component=component)
    assert (state.state, state.last_latency_ms) == ("degraded", None)


def test_results_record__component_without_state_row__state_created():
    # Given a claimed component whose state row is missing
    component = make_component()
    ComponentState.objects.filter(component=component).delete()
    token = _claimed(component)

    # When its result is recorded
    results_record(
        claim_token=token,
        outcomes={component.pk: CheckOutcome("healthy", 1.0)},
        now=timezone.now(),
    )

    # Then the state row exists with the result applied
    state = ComponentState.objects.get(component=component)
    assert (state.state, state.consecutive_successes) == ("healthy", 1)
