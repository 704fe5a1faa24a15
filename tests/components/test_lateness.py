"""An overdue heartbeat shows as late at read time, with no evaluation task run
(beat stopped): /health, the dashboard snapshot, the admin list, the REST API."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.components.heartbeats import PingAction, heartbeat_ping, heartbeats_evaluate
from apps.components.lateness import state_shown
from apps.components.models import Component, ComponentState, Heartbeat
from apps.components.selectors import components_live, health_report
from tests.components.helpers import make_component
from tests.factories import bearer, make_token, make_user

pytestmark = pytest.mark.django_db
# Due a minute after each ping, with a minute's grace.
SCHEDULE = {"period_seconds": 60, "grace_seconds": 60}


def pinged(slug: str, *, minutes_ago: float) -> Component:
    """A heartbeat whose last (successful) ping was ``minutes_ago``."""
    component = make_component(kind="heartbeat", slug=slug, config=SCHEDULE)
    beat = Heartbeat.objects.get(component=component)
    at = timezone.now() - timedelta(minutes=minutes_ago)
    heartbeat_ping(ping_uuid=beat.ping_uuid, action=PingAction.SUCCESS, now=at)
    return component


def test_health__ping_overdue_and_no_evaluation__fails_late(client):
    # Given a heartbeat pinged 10 minutes ago, due within 2, and nothing evaluated
    pinged("nightly", minutes_ago=10)
    pinged("hourly", minutes_ago=0)
    assert ComponentState.objects.get(component__slug="nightly").state == "healthy"

    # When /health is asked, anonymously and as a reader
    anonymous = client.get("/health")
    token = make_token(scopes=("read",))[1]
    detailed = client.get("/health", headers=bearer(token))

    # Then both fail, and the reader sees which one is late and since when
    assert (anonymous.status_code, anonymous.json()["status"]) == (503, "fail")
    checks = detailed.json()["checks"]
    assert checks["nightly"][0]["status"] == "fail"
    assert checks["nightly"][0]["output"].startswith("late: no ping since ")
    assert checks["hourly"][0]["status"] == "pass"


def test_components_live__ping_overdue_and_no_evaluation__tile_unhealthy_late():
    component = pinged("nightly", minutes_ago=10)
    due = Heartbeat.objects.get(component=component).alert_after

    [tile] = components_live()["tiles"]

    assert tile["state"] == "unhealthy"
    assert tile["message"].startswith("late: no ping since ")
    assert tile["since"] == due.isoformat()


def test_health__ping_within_grace__passes():
    pinged("nightly", minutes_ago=1.5)

    report = health_report(detailed=True)

    assert (report.status, report.checks[0].state) == ("pass", "healthy")


def test_health__late_heartbeat_paused__not_counted():
    component = pinged("nightly", minutes_ago=10)
    Component.objects.filter(pk=component.pk).update(paused=True)

    assert health_report(detailed=False).status == "pass"


def test_health__evaluation_recorded_the_miss__stored_state_shown():
    pinged("nightly", minutes_ago=10)
    assert heartbeats_evaluate(now=timezone.now()) == 1

    [check] = health_report(detailed=True).checks

    assert (check.status, check.state) == ("fail", "unhealthy")
    assert check.message.startswith("ping missing")


def test_api_component__ping_overdue__state_unhealthy_and_late(client):
    pinged("nightly", minutes_ago=10)
    token = make_token(scopes=("read",))[1]

    body = client.get("/api/v1/components/nightly", headers=bearer(token)).json()

    state = body["state"]
    assert (state["state"], state["late"]) == ("unhealthy", True)
    assert state["last_message"].startswith("late: no ping since ")
    assert state["consecutive_failures"] == 0


def test_admin_changelist__ping_overdue__state_column_late_in_red(client):
    pinged("nightly", minutes_ago=10)
    client.force_login(make_user(role="viewer"))

    page = client.get(reverse("admin:components_component_changelist"))

    html = page.content.decode()
    assert 'style="color:#c62828"' in html
    assert "&#9679; late</span>" in html


def test_state_shown__down_already__stored_state_kept():
    now = timezone.now()

    shown = state_shown(
        state="unhealthy",
        alert_after=now - timedelta(minutes=1),
        now=now,
        message="fail ping",
    )

    assert (shown.state, shown.message, shown.late) == ("unhealthy", "fail ping", False)


def test_state_shown__started_never_pinged__late_no_ping_yet():
    now = timezone.now()

    shown = state_shown(
        state="unknown", alert_after=now - timedelta(seconds=1), now=now
    )

    assert (shown.state, shown.late) == ("unhealthy", True)
    assert shown.message.startswith("late: no ping yet")
