"""Heartbeat (push) components: ping views, run durations, late pings, rate limits."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.components.checkers.heartbeat import Config, next_expected
from apps.components.heartbeats import (
    PING_RATE_LIMIT,
    PingAction,
    heartbeat_ping,
    heartbeats_evaluate,
    ping_rate_allowed,
)
from apps.components.models import Component, ComponentState, HealthResult, Heartbeat
from apps.components.services import component_check_now, components_dispatch_due
from apps.core.exceptions import Conflict, ValidationFailed
from apps.core.models import AuditEvent
from tests.components.helpers import make_component

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def heartbeat(**config):
    component = make_component(
        kind="heartbeat", config={"period_seconds": 60, "grace_seconds": 30, **config}
    )
    return Heartbeat.objects.get(component=component)


def ping(hb, action=PingAction.SUCCESS, at=T0, **kwargs):
    return heartbeat_ping(ping_uuid=hb.ping_uuid, action=action, now=at, **kwargs)


def state_of(hb) -> str:
    return ComponentState.objects.get(component_id=hb.component_id).state


def test_ping_view__success__ok_and_healthy_result(client):
    hb = heartbeat()
    response = client.get(f"/ping/{hb.ping_uuid}")
    assert (response.status_code, response.content) == (200, b"OK")
    assert response["Content-Type"].startswith("text/plain")
    assert "no-cache" in response["Cache-Control"]
    result = HealthResult.objects.get(component_id=hb.component_id)
    assert (result.status, result.details["ping"]) == ("healthy", "success")
    assert state_of(hb) == "healthy"


def test_ping_view__post_body__stored_with_result(client):
    hb = heartbeat()
    response = client.post(f"/ping/{hb.ping_uuid}/fail", "disk full", "text/plain")
    assert response.status_code == 200
    result = HealthResult.objects.get(component_id=hb.component_id)
    assert (result.status, result.details["body"]) == ("unhealthy", "disk full")


@pytest.mark.parametrize(
    ("suffix", "status", "message_part"),
    [("/0", "healthy", "exit status 0"), ("/3", "unhealthy", "exit status 3")],
)
def test_ping_view__exit_status__success_or_failure(
    client, suffix, status, message_part
):
    hb = heartbeat()
    assert client.post(f"/ping/{hb.ping_uuid}{suffix}").content == b"OK"
    result = HealthResult.objects.get(component_id=hb.component_id)
    assert result.status == status
    assert message_part in result.message
    assert result.details["exit_status"] == int(suffix[1:])


def test_ping_view__fail__unhealthy_at_once(client):
    hb = heartbeat()
    client.get(f"/ping/{hb.ping_uuid}")
    client.get(f"/ping/{hb.ping_uuid}/fail")
    assert state_of(hb) == "unhealthy"


def test_ping_view__bad_rid__400_and_nothing_recorded(client):
    hb = heartbeat()
    response = client.get(f"/ping/{hb.ping_uuid}/start?rid=not-a-uuid")
    assert (response.status_code, response.content) == (400, b"invalid url format")
    hb.refresh_from_db()
    assert hb.last_start_at is None


def test_ping_view__too_many__429_and_only_allowed_pings_recorded(client):
    hb = heartbeat()
    # Two windows at most hold twice the limit, so a 429 must come by then.
    answers = []
    while 429 not in answers and len(answers) <= 2 * PING_RATE_LIMIT:
        answers.append(client.get(f"/ping/{hb.ping_uuid}").status_code)
    assert answers[-1] == 429
    recorded = HealthResult.objects.filter(component_id=hb.component_id).count()
    assert recorded == answers.count(200)


def test_ping_rate_allowed__limit_then_next_window__refused_then_allowed():
    key = uuid.uuid4()
    allowed = [ping_rate_allowed(ping_uuid=key, now=T0) for _ in range(31)]
    assert allowed == [True] * PING_RATE_LIMIT + [False]
    assert ping_rate_allowed(ping_uuid=key, now=T0 + timedelta(seconds=60))


def test_ping_view__paused__ok_but_ignored(client):
    hb = heartbeat()
    Component.objects.filter(pk=hb.component_id).update(paused=True)
    assert client.get(f"/ping/{hb.ping_uuid}/fail").content == b"OK"
    assert not HealthResult.objects.filter(component_id=hb.component_id).exists()


def test_ping__start_then_success_same_rid__duration_recorded():
    hb = heartbeat()
    rid = uuid.uuid4()
    ping(hb, PingAction.START, rid=rid)
    hb = ping(hb, at=T0 + timedelta(seconds=42), rid=rid)
    assert hb.last_duration == timedelta(seconds=42)
    assert hb.last_start_at is None
    result = HealthResult.objects.get(component_id=hb.component_id)
    assert (result.latency_ms, result.details["duration_s"]) == (42000, 42)


def test_ping__success_other_rid__start_kept_no_duration():
    hb = heartbeat()
    ping(hb, PingAction.START, rid=uuid.uuid4())
    hb = ping(hb, at=T0 + timedelta(seconds=5), rid=uuid.uuid4())
    assert (hb.last_start_at, hb.last_duration) == (T0, None)


def test_ping__start__last_ping_untouched_and_no_result():
    hb = heartbeat()
    hb = ping(hb, PingAction.START)
    assert (hb.last_ping_at, hb.last_start_at) == (None, T0)
    assert hb.alert_after == T0 + timedelta(seconds=30)
    assert not HealthResult.objects.filter(component_id=hb.component_id).exists()


def test_evaluate__ping_missing_past_grace__unhealthy_once():
    # Given a heartbeat pinged at T0 with a 60 s period and 30 s grace
    hb = heartbeat()
    ping(hb)
    # When the scheduler looks just before and at the deadline
    before = heartbeats_evaluate(now=T0 + timedelta(seconds=89))
    at = heartbeats_evaluate(now=T0 + timedelta(seconds=90))
    again = heartbeats_evaluate(now=T0 + timedelta(seconds=91))
    # Then one failure is recorded, at the deadline, and it is unhealthy
    assert (before, at, again) == (0, 1, 0)
    missing = HealthResult.objects.filter(component_id=hb.component_id).first()
    assert missing.status == "unhealthy"
    assert "ping missing" in missing.message
    assert state_of(hb) == "unhealthy"


def test_evaluate__never_pinged__stays_unknown():
    hb = heartbeat()
    assert heartbeats_evaluate(now=T0 + timedelta(days=30)) == 0
    assert state_of(hb) == "unknown"


def test_evaluate__started_without_success__running_too_long():
    hb = heartbeat(period_seconds=3600)
    ping(hb)
    ping(hb, PingAction.START, at=T0 + timedelta(seconds=10))
    assert heartbeats_evaluate(now=T0 + timedelta(seconds=39)) == 0
    assert heartbeats_evaluate(now=T0 + timedelta(seconds=40)) == 1
    late = HealthResult.objects.filter(component_id=hb.component_id).first()
    assert "running too long" in late.message
    assert state_of(hb) == "unhealthy"
    # The late run finishing still gives its duration and recovers.
    hb = ping(hb, at=T0 + timedelta(seconds=100))
    assert hb.last_duration == timedelta(seconds=90)
    assert state_of(hb) == "healthy"


def test_evaluate__paused__not_reported():
    hb = heartbeat()
    ping(hb)
    Component.objects.filter(pk=hb.component_id).update(paused=True)
    assert heartbeats_evaluate(now=T0 + timedelta(hours=1)) == 0


def test_next_expected__cron_in_zone__next_local_match():
    config = Config(cron="0 3 * * *", timezone="Europe/Berlin", grace_seconds=60)
    due = next_expected(config, after=datetime(2026, 7, 1, 12, 0, tzinfo=UTC))
    assert due == datetime(2026, 7, 2, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "config",
    [
        {"period_seconds": 60, "cron": "* * * * *"},
        {},
        {"cron": "not cron"},
        {"period_seconds": 60, "timezone": "Mars/Olympus"},
    ],
)
def test_component_create__bad_heartbeat_schedule__validation_failed(config):
    with pytest.raises(ValidationFailed) as caught:
        make_component(kind="heartbeat", config=config)
    # The path names the key at fault (config.cron), or config for the whole.
    assert {path.partition(".")[0] for path in caught.value.fields} == {"config"}


def test_dispatch__heartbeat_due__not_claimed(django_capture_on_commit_callbacks):
    heartbeat()
    with django_capture_on_commit_callbacks(execute=False):
        assert components_dispatch_due(now=timezone.now()) == 0


def test_check_now__heartbeat__conflict():
    hb = heartbeat()
    with pytest.raises(Conflict) as caught:
        component_check_now(
            slug=hb.component.slug, actor=None, source=AuditEvent.Source.SYSTEM
        )
    assert caught.value.code == "push_component"


def test_beat_schedule__heartbeats__evaluated_by_a_registered_task():
    from apps.components.tasks import evaluate_heartbeats
    from opsconsole.celery import BEAT_SCHEDULE

    entry = BEAT_SCHEDULE["components.heartbeats_evaluate"]
    assert entry["task"] == evaluate_heartbeats.name
    assert entry["schedule"] <= 5
