"""The components REST API: reads with state, paged results, incidents, actions."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.components.heartbeats import PingAction, heartbeat_ping
from apps.components.models import Component, HealthResult, Heartbeat
from apps.components.selectors import MASK
from apps.components.services import component_uptimes_refresh
from apps.core.models import AuditEvent
from tests.components.helpers import checks_rolled, make_component
from tests.core.test_api import assert_error
from tests.factories import bearer, make_token, make_user

pytestmark = pytest.mark.django_db
URL = "/api/v1/components"


@pytest.fixture
def reader():
    return bearer(make_token(scopes=("read",))[1])


@pytest.fixture
def operator():
    user = make_user(role="operator")
    return bearer(make_token(user=user, scopes=("read", "write"))[1])


def results(component, count, *, start):
    HealthResult.objects.bulk_create(
        HealthResult(
            component=component,
            status="healthy",
            latency_ms=n,
            checked_at=start + timedelta(seconds=n),
        )
        for n in range(count)
    )


def test_list__reader__state_config_masked_and_filters(client, reader):
    make_component(slug="db", kind="postgres", group="data", config={"dsn": "x"})
    make_component(slug="web", group="front")
    body = client.get(URL, {"group": "data"}, headers=reader).json()
    assert body["count"] == 1
    row = body["items"][0]
    assert (row["slug"], row["config"], row["state"]["state"]) == (
        "db",
        {"dsn": MASK},
        "unknown",
    )
    assert row["ping_url"] is None


def test_get__heartbeat__state_and_ping_url(client, reader):
    component = make_component(
        kind="heartbeat", slug="nightly", config={"period_seconds": 60}
    )
    beat = Heartbeat.objects.get(component=component)
    heartbeat_ping(ping_uuid=beat.ping_uuid, action=PingAction.FAIL, now=timezone.now())
    # The uptime reads closed hours' rollups: the failure's check, an hour back.
    (failed,) = component.results.all()
    failed.checked_at -= timedelta(hours=1)
    checks_rolled([failed])
    component_uptimes_refresh(now=timezone.now())
    body = client.get(f"{URL}/nightly", headers=reader).json()
    assert body["state"]["state"] == "unhealthy"
    assert body["ping_url"] == f"/ping/{beat.ping_uuid}"
    assert body["uptime_24h_pct"] == 0


def test_get__unknown__404(client, reader):
    assert_error(client.get(f"{URL}/nope", headers=reader), 404, "component_not_found")


def test_list__no_credentials__401(client):
    assert_error(client.get(URL), 401, "not_authenticated")


def test_results__cursor_pages__all_once_newest_first_in_range(client, reader):
    # Given 25 results a second apart
    component = make_component(slug="web")
    start = timezone.now() - timedelta(hours=1)
    results(component, 25, start=start)
    # When the range [2 s, 22 s) is read 8 at a time by cursor
    query = {
        "since": (start + timedelta(seconds=2)).isoformat(),
        "until": (start + timedelta(seconds=22)).isoformat(),
        "limit": 8,
    }
    seen, pages = [], 0
    while True:
        body = client.get(f"{URL}/web/results", query, headers=reader).json()
        seen += [item["latency_ms"] for item in body["items"]]
        pages += 1
        if not body["next_cursor"]:
            break
        query["cursor"] = body["next_cursor"]
    # Then each result in range comes once, newest first, in 3 pages
    assert seen == list(range(21, 1, -1))
    assert pages == 3


def test_results__bad_cursor__422(client, reader):
    make_component(slug="web")
    response = client.get(f"{URL}/web/results?cursor=zz", headers=reader)
    body = assert_error(response, 422, "validation_failed")
    assert "cursor" in body["extra"]["fields"]


def test_incidents__failing_then_recovered__open_and_closed(client, reader):
    component = make_component(
        kind="heartbeat", slug="nightly", config={"period_seconds": 60}
    )
    ping_uuid = Heartbeat.objects.get(component=component).ping_uuid
    start = timezone.now()
    for offset, action in [(0, PingAction.FAIL), (90, PingAction.SUCCESS)]:
        heartbeat_ping(
            ping_uuid=ping_uuid, action=action, now=start + timedelta(seconds=offset)
        )
    body = client.get(f"{URL}/nightly/incidents", headers=reader).json()
    changes = [(c["to_state"], c["incident_duration_s"]) for c in body["items"]]
    assert changes == [("healthy", 90.0), ("unhealthy", None)]
    assert body["items"][1]["incident_opened"]


def test_check_now__operator__202_and_audited(client, operator):
    make_component(slug="web")
    response = client.post(f"{URL}/web/check", headers=operator)
    assert response.status_code == 202, response.json()
    assert response.json()["claimed_until"] is not None
    assert AuditEvent.objects.get(action="component.check_requested").source == "api"


def test_check_now__twice__409(client, operator):
    make_component(slug="web")
    client.post(f"{URL}/web/check", headers=operator)
    response = client.post(f"{URL}/web/check", headers=operator)
    assert_error(response, 409, "check_in_progress")


def test_check_now__read_token__403(client, reader):
    make_component(slug="web")
    assert_error(client.post(f"{URL}/web/check", headers=reader), 403, "scope_missing")


def test_pause_resume__operator__flag_and_reason(client, operator):
    make_component(slug="web")
    paused = client.post(
        f"{URL}/web/pause", {"reason": "noisy"}, "application/json", headers=operator
    )
    assert paused.json()["paused"] is True
    again = client.post(f"{URL}/web/pause", {}, "application/json", headers=operator)
    assert_error(again, 409, "already_paused")
    resumed = client.post(f"{URL}/web/resume", {}, "application/json", headers=operator)
    assert resumed.json()["paused"] is False
    assert AuditEvent.objects.get(action="component.paused").reason == "noisy"


def test_maintenance__create_then_end__201_then_ended(client, operator):
    component = make_component(slug="web")
    ends = (timezone.now() + timedelta(hours=2)).isoformat()
    created = client.post(
        f"{URL}/web/maintenance",
        {"ends_at": ends, "reason": "upgrade"},
        "application/json",
        headers=operator,
    )
    assert created.status_code == 201, created.json()
    assert created.json()["reason"] == "upgrade"
    ended = client.post(
        f"{URL}/web/maintenance/end", {}, "application/json", headers=operator
    )
    assert ended.json() == {"ended": 1}
    assert not component.maintenance_windows.get().is_open(timezone.now())


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"cron": "not cron", "duration_seconds": 60}, "cron"),
        (
            {"ends_at": "2020-01-01T00:00:00Z", "starts_at": "2021-01-01T00:00:00Z"},
            "__all__",
        ),
        ({"cron": "* * * * *", "duration_seconds": 0}, "duration_seconds"),
    ],
)
def test_maintenance__invalid__422(client, operator, payload, field):
    make_component(slug="web")
    response = client.post(
        f"{URL}/web/maintenance", payload, "application/json", headers=operator
    )
    body = assert_error(response, 422, "validation_failed")
    assert field in body["extra"]["fields"], body


def test_maintenance__viewer_session__403(client):
    make_component(slug="web")
    client.force_login(make_user(role="viewer"))
    response = client.post(
        f"{URL}/web/maintenance", {"ends_at": None}, "application/json"
    )
    assert_error(response, 403, "scope_missing")
    assert not Component.objects.get(slug="web").maintenance_windows.exists()


def test_openapi__components_paths__documented(client):
    paths = set(client.get("/api/v1/openapi.json").json()["paths"])
    assert {
        "/api/v1/components",
        "/api/v1/components/{slug}",
        "/api/v1/components/{slug}/results",
        "/api/v1/components/{slug}/incidents",
        "/api/v1/components/{slug}/check",
        "/api/v1/components/{slug}/maintenance",
    } <= paths
