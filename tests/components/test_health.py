"""``/health``: the IETF draft's health+json, details only for readers."""

import jsonschema
import pytest
from django.utils import timezone

from apps.components.heartbeats import PingAction, heartbeat_ping
from apps.components.models import Component, Heartbeat
from tests.components.helpers import make_component
from tests.factories import bearer, make_token, make_user

pytestmark = pytest.mark.django_db

STATUS = {"enum": ["pass", "warn", "fail"]}
# The shape of draft-inadarei-api-health-check: top level and the checks object.
DRAFT_SCHEMA = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": STATUS,
        "description": {"type": "string"},
        "checks": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "componentId": {"type": "string"},
                        "componentType": {"type": "string"},
                        "observedValue": {"type": "number"},
                        "observedUnit": {"type": "string"},
                        "status": STATUS,
                        "time": {"type": "string", "format": "date-time"},
                        "output": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
            },
        },
    },
}


def pinged(slug: str, action: PingAction) -> None:
    component = make_component(
        kind="heartbeat", slug=slug, config={"period_seconds": 60}
    )
    ping_uuid = Heartbeat.objects.get(component=component).ping_uuid
    heartbeat_ping(ping_uuid=ping_uuid, action=action, now=timezone.now())


def get_health(client, **headers):
    response = client.get("/health", headers=headers)
    assert response["Content-Type"] == "application/health+json"
    body = response.json()
    jsonschema.validate(body, DRAFT_SCHEMA, format_checker=jsonschema.FormatChecker())
    return response.status_code, body


def test_health__anonymous_all_pass__status_only(client):
    pinged("cron-a", PingAction.SUCCESS)
    assert get_health(client) == (200, {"status": "pass", "description": "opsconsole"})


def test_health__anonymous_one_failing__503_fail_without_checks(client):
    pinged("cron-a", PingAction.SUCCESS)
    pinged("cron-b", PingAction.FAIL)
    status, body = get_health(client)
    assert (status, body["status"]) == (503, "fail")
    assert "checks" not in body


def test_health__viewer_session__checks_keyed_by_component(client):
    # Given one passing, one failing and one never-checked component
    pinged("cron-a", PingAction.SUCCESS)
    pinged("cron-b", PingAction.FAIL)
    make_component(slug="web-c")
    client.force_login(make_user(role="viewer"))
    # When a viewer asks
    status, body = get_health(client)
    # Then each component is shown with the draft's fields
    assert status == 503
    checks = body["checks"]
    assert set(checks) == {"cron-a", "cron-b", "web-c"}
    assert checks["cron-a"][0]["status"] == "pass"
    assert checks["cron-a"][0]["observedUnit"] == "ms"
    assert "output" not in checks["cron-a"][0]
    assert checks["cron-b"][0]["output"] == "fail ping"
    assert checks["web-c"][0] == {
        "componentId": "web-c",
        "componentType": "component",
        "status": "warn",
    }


def test_health__read_token__details(client):
    pinged("cron-a", PingAction.SUCCESS)
    _, raw = make_token(scopes=("read",))
    _, body = get_health(client, **bearer(raw))
    assert list(body["checks"]) == ["cron-a"]


def test_health__bad_token__status_only(client):
    pinged("cron-a", PingAction.SUCCESS)
    _, body = get_health(client, **bearer("opc_nope"))
    assert body == {"status": "pass", "description": "opsconsole"}


def test_health__user_without_role__status_only(client):
    pinged("cron-a", PingAction.SUCCESS)
    client.force_login(make_user())
    assert "checks" not in get_health(client)[1]


def test_health__paused_failing_component__not_counted(client):
    pinged("cron-a", PingAction.SUCCESS)
    pinged("cron-b", PingAction.FAIL)
    Component.objects.filter(slug="cron-b").update(paused=True)
    client.force_login(make_user(role="viewer"))
    status, body = get_health(client)
    assert (status, body["status"]) == (200, "pass")
    assert "cron-b" not in body["checks"]


def test_health__no_components__pass(client):
    assert get_health(client) == (200, {"status": "pass", "description": "opsconsole"})
