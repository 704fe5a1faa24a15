"""component_update and component_delete, and the beat heartbeat task."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.components.models import Component, ComponentState, Heartbeat
from apps.components.services import (
    BEAT_HEARTBEAT_SLUG,
    component_delete,
    component_update,
    components_ensure_self,
)
from apps.components.tasks import beat_heartbeat
from apps.core.exceptions import ValidationFailed
from apps.core.models import AuditEvent
from tests.components.helpers import make_component

pytestmark = pytest.mark.django_db
SYSTEM = {"actor": None, "source": AuditEvent.Source.SYSTEM}


def test_update__shorter_interval__next_check_from_last_check():
    # Given a component checked 5 s ago on a 300 s interval
    component = make_component(slug="web", interval_seconds=300)
    last = timezone.now() - timedelta(seconds=5)
    ComponentState.objects.filter(component=component).update(last_checked_at=last)
    Component.objects.filter(pk=component.pk).update(
        next_check_at=last + timedelta(seconds=300)
    )
    # When the interval becomes 30 s
    updated = component_update(slug="web", data={"interval_seconds": 30}, **SYSTEM)
    # Then the next check is 30 s after the last one, not 300
    assert updated.next_check_at == last + timedelta(seconds=30)


def test_update__config_changed__checked_now():
    component = make_component(slug="web", interval_seconds=300)
    far = timezone.now() + timedelta(hours=1)
    Component.objects.filter(pk=component.pk).update(next_check_at=far)
    before = timezone.now()
    updated = component_update(
        slug="web", data={"config": {"url": "http://h/"}}, **SYSTEM
    )
    assert before <= updated.next_check_at <= timezone.now()


def test_update__self_dependency__validation_failed_on_depends_on():
    component = make_component(slug="web")
    with pytest.raises(ValidationFailed) as caught:
        component_update(slug="web", data={"depends_on": [component]}, **SYSTEM)
    assert caught.value.fields == {"depends_on": ["Would close a cycle: web → web"]}


def test_update__kind_to_heartbeat__gets_ping_url_and_back():
    make_component(slug="job")
    heartbeat = {"kind": "heartbeat", "config": {"period_seconds": 60}}
    component_update(slug="job", data=heartbeat, **SYSTEM)
    assert Heartbeat.objects.filter(component__slug="job").exists()
    polled = {"kind": "http", "config": {"url": "http://h/"}}
    component_update(slug="job", data=polled, **SYSTEM)
    assert not Heartbeat.objects.filter(component__slug="job").exists()


def test_update__unknown_field__validation_failed():
    make_component(slug="web")
    with pytest.raises(ValidationFailed) as caught:
        component_update(slug="web", data={"paused": True, "slug": "x"}, **SYSTEM)
    assert set(caught.value.fields) == {"paused", "slug"}


def test_delete__with_dependent__removed_and_audited():
    db = make_component(slug="db")
    web = make_component(slug="web", depends_on=[db])
    component_delete(slug="db", reason="retired", **SYSTEM)
    assert list(Component.objects.all()) == [web]
    assert list(web.depends_on.all()) == []
    event = AuditEvent.objects.get(action="component.deleted")
    assert (event.reason, event.before["dependents"]) == ("retired", ["web"])


def test_beat_heartbeat__console_beat_registered__healthy():
    # Given the console's own components, console-beat among them
    components_ensure_self()
    state = ComponentState.objects.get(component__slug=BEAT_HEARTBEAT_SLUG)
    assert state.state == "unknown"
    # When beat's task runs (as a worker runs it)
    assert beat_heartbeat.apply().get() is True
    # Then the heartbeat was pinged and console-beat is healthy
    state.refresh_from_db()
    assert state.state == "healthy"
    beat = Heartbeat.objects.get(component__slug=BEAT_HEARTBEAT_SLUG)
    assert beat.expected_at == beat.last_ping_at + timedelta(seconds=10)


def test_beat_heartbeat__not_registered__returns_quietly():
    assert beat_heartbeat.apply().get() is False
