"""The state machine through the real pipeline: claim, check an HTTP target, record."""

import json
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from apps.components.models import ComponentState, HealthResult, StateChange
from apps.components.services import (
    component_check_now,
    components_run_batch,
    maintenance_window_create,
)
from apps.components.transitions import (
    transition_listener,
    transition_listener_remove,
)
from apps.core.models import AuditEvent
from apps.live.publisher import channel
from tests.components.helpers import make_component
from tests.procs import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard():
    """The transitions the listeners were called with."""
    calls = []
    listener = transition_listener(calls.append)
    yield calls
    transition_listener_remove(listener)


@pytest.fixture
def check(django_capture_on_commit_callbacks):
    """Run one check of a component now, as the worker would, commit hooks included."""

    def run(component) -> str:
        with django_capture_on_commit_callbacks(execute=False):
            claimed = component_check_now(
                slug=component.slug, actor=None, source=AuditEvent.Source.SYSTEM
            )
        with django_capture_on_commit_callbacks(execute=True):
            components_run_batch(
                component_ids=[component.pk], claim_token=claimed.claim_token
            )
        return ComponentState.objects.get(component=component).state

    return run


def _http(target, **options):
    defaults = {"failure_threshold": 3, "success_threshold": 2, "timeout_seconds": 2}
    return make_component(config={"url": target.url("/svc")}, **{**defaults, **options})


def test_state__target_goes_down__unhealthy_after_threshold_not_before(
    target, check, heard
):
    component = _http(target)
    assert check(component) == "healthy"
    target.status = 500
    assert [check(component) for _ in range(3)] == ["healthy", "healthy", "unhealthy"]
    assert [(t.from_state, t.to_state) for t in heard] == [
        ("unknown", "healthy"),
        ("healthy", "unhealthy"),
    ]
    change = StateChange.objects.filter(component=component).first()
    assert change.incident_opened
    assert HealthResult.objects.filter(component=component).count() == 4


def test_state__target_comes_back__healthy_after_success_threshold(target, check):
    component = _http(target)
    target.status = 500
    for _ in range(3):
        check(component)
    target.status = 200
    assert [check(component) for _ in range(2)] == ["unhealthy", "healthy"]
    closing = StateChange.objects.filter(component=component).first()
    assert closing.to_state == "healthy"
    assert closing.incident_duration is not None
    assert closing.incident_duration >= timedelta(0)


def test_state__flapping_target__state_does_not_flap(target, check, heard):
    component = _http(target)
    check(component)
    states = []
    for status in [500, 200, 500, 500, 200, 500, 200, 500, 500, 200]:
        target.status = status
        states.append(check(component))
    assert set(states) == {"healthy"}
    assert len(heard) == 1


def test_state__dependency_unhealthy__impacted_and_not_alerted(target, check, heard):
    database = _http(target, slug="database")
    app = make_component(
        slug="app",
        config={"url": target.url("/app")},
        failure_threshold=1,
        depends_on=[database],
    )
    target.status = 500
    for _ in range(3):
        check(database)
    heard.clear()
    assert check(app) == "impacted"
    assert heard == []
    target.status = 200
    check(database)
    check(database)
    target.status = 500
    assert check(app) == "unhealthy"
    assert [(t.slug, t.to_state) for t in heard][-1] == ("app", "unhealthy")


def test_state__in_maintenance__recorded_without_listener_call(target, check, heard):
    component = _http(target)
    check(component)
    now = timezone.now()
    maintenance_window_create(
        component=component,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        actor=None,
        source=AuditEvent.Source.SYSTEM,
    )
    heard.clear()
    target.status = 500
    assert [check(component) for _ in range(3)][-1] == "unhealthy"
    assert heard == []
    assert StateChange.objects.filter(component=component).first().in_maintenance
    assert (
        HealthResult.objects.filter(component=component, in_maintenance=True).count()
        == 3
    )


def test_state__recurring_window_now__in_maintenance(target, check, heard):
    component = _http(target, failure_threshold=1)
    maintenance_window_create(
        component=component,
        starts_at=timezone.now() - timedelta(days=1),
        ends_at=None,
        cron="* * * * *",
        duration=timedelta(minutes=1),
        actor=None,
        source=AuditEvent.Source.SYSTEM,
    )
    target.status = 500
    assert check(component) == "unhealthy"
    assert heard == []


def test_state__transition__published_live_after_commit(target, check):
    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel())
    component = _http(target)
    check(component)
    message = wait_until(lambda: pubsub.get_message(timeout=0.1), timeout=5)
    pubsub.close()
    body = json.loads(message["data"])
    assert (body["topic"], body["key"]) == ("components", component.slug)
    assert body["payload"]["state"] == "healthy"
