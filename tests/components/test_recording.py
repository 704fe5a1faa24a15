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
