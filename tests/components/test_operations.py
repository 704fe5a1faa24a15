"""Operator services: pause, resume and ending maintenance, each audited."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.components.heartbeats import PingAction, heartbeat_ping
from apps.components.models import Heartbeat
from apps.components.services import (
    component_pause,
    component_resume,
    maintenance_end,
    maintenance_window_create,
)
from apps.core.exceptions import Conflict, NotFound
from apps.core.models import AuditEvent
from tests.components.helpers import make_component

pytestmark = pytest.mark.django_db
SYSTEM = {"actor": None, "source": AuditEvent.Source.SYSTEM}


def test_pause__twice__conflict_and_one_audit():
    component = make_component()
    component_pause(slug=component.slug, reason="noisy", **SYSTEM)
    with pytest.raises(Conflict) as caught:
        component_pause(slug=component.slug, **SYSTEM)
    assert caught.value.code == "already_paused"
    assert AuditEvent.objects.filter(action="component.paused").count() == 1


def test_resume__not_paused__conflict():
    component = make_component()
    with pytest.raises(Conflict) as caught:
        component_resume(slug=component.slug, **SYSTEM)
    assert caught.value.code == "not_paused"


def test_resume__due_now_and_heartbeat_waits_for_next_ping():
    # Given a heartbeat that was pinged, then paused
    component = make_component(kind="heartbeat", config={"period_seconds": 60})
    beat = Heartbeat.objects.get(component=component)
    heartbeat_ping(
        ping_uuid=beat.ping_uuid, action=PingAction.SUCCESS, now=timezone.now()
    )
    component_pause(slug=component.slug, **SYSTEM)
    # When it is resumed
    resumed = component_resume(slug=component.slug, **SYSTEM)
    # Then it is due and its missed pings while paused don't count
    beat.refresh_from_db()
    assert resumed.next_check_at <= timezone.now()
    assert (beat.expected_at, beat.alert_after) == (None, None)


def test_pause__unknown_slug__not_found():
    with pytest.raises(NotFound):
        component_pause(slug="nope", **SYSTEM)


def test_maintenance_end__one_off_open__ended_and_audited():
    component = make_component()
    now = timezone.now()
    window = maintenance_window_create(
        component=component,
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(hours=1),
        **SYSTEM,
    )
    assert maintenance_end(slug=component.slug, reason="done", **SYSTEM) == 1
    window.refresh_from_db()
    assert window.ends_at <= timezone.now()
    assert AuditEvent.objects.get(action="component.maintenance_ended").reason == "done"


def test_maintenance_end__only_recurring_open__conflict():
    component = make_component()
    maintenance_window_create(
        component=component,
        starts_at=timezone.now() - timedelta(days=1),
        ends_at=None,
        cron="* * * * *",
        duration=timedelta(minutes=2),
        **SYSTEM,
    )
    with pytest.raises(Conflict) as caught:
        maintenance_end(slug=component.slug, **SYSTEM)
    assert caught.value.code == "not_in_maintenance"
