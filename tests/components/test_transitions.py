"""Batch transition listeners: one call per recorded batch, notifications in bulk."""

import uuid

import pytest
from django.utils import timezone

from apps.components.checkers.base import CheckOutcome
from apps.components.models import Component
from apps.components.notifications.models import Notification
from apps.components.recording import results_record
from apps.components.transitions import (
    transitions_listener,
    transitions_listener_remove,
)
from tests.components.helpers import make_component
from tests.components.notify import make_channel

pytestmark = pytest.mark.django_db


@pytest.fixture
def batches():
    """The transition lists the batch listeners were called with."""
    calls = []
    listener = transitions_listener(calls.append)
    yield calls
    transitions_listener_remove(listener)


def _record(capture, outcomes: dict[Component, str]) -> None:
    token = uuid.uuid4()
    Component.objects.filter(pk__in=[c.pk for c in outcomes]).update(
        claim_token=token, claimed_until=timezone.now()
    )
    with capture(execute=False) as after_commit:
        results_record(
            claim_token=token,
            outcomes={
                c.pk: CheckOutcome(status, 1.0, status)
                for c, status in outcomes.items()
            },
            now=timezone.now(),
        )
    # Run the recording's hooks (listeners) but not the deliveries they enqueue.
    with capture(execute=False):
        for callback in after_commit:
            callback()


def test_batch_listener__one_batch__called_once_with_its_alerting_transitions(
    batches, django_capture_on_commit_callbacks
):
    down = make_component(failure_threshold=1)
    steady = make_component(failure_threshold=3)
    up = make_component(success_threshold=1)
    _record(
        django_capture_on_commit_callbacks,
        {down: "unhealthy", steady: "unhealthy", up: "healthy"},
    )
    assert [[(t.slug, t.to_state) for t in batch] for batch in batches] == [
        [(down.slug, "unhealthy"), (up.slug, "healthy")]
    ]
    assert all(t.state_change_id is not None for t in batches[0])


def test_batch_listener__no_transition__not_called(
    batches, django_capture_on_commit_callbacks
):
    steady = make_component(failure_threshold=3)
    _record(django_capture_on_commit_callbacks, {steady: "unhealthy"})
    assert batches == []


def test_notify_transitions__shared_channel__one_per_changed_component_and_channel(
    django_capture_on_commit_callbacks,
):
    first, second, quiet = (make_component(failure_threshold=1) for _ in range(3))
    shared = make_channel(components=(first, quiet))
    own = make_channel(components=(second,))
    make_channel(components=(first,), enabled=False)
    _record(
        django_capture_on_commit_callbacks,
        {first: "unhealthy", second: "unhealthy"},
    )
    made = set(Notification.objects.values_list("component_id", "channel_id", "status"))
    assert made == {
        (first.pk, shared.pk, "pending"),
        (second.pk, own.pk, "pending"),
    }
