"""The ping views against Healthchecks.io's contract, read from its transcription.

contracts/healthchecks-ping-semantics.json is a copy of
shared/peer-suites/healthchecks-ping-semantics.json (derived data, not upstream code).
"""

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.components.checkers.heartbeat import Config
from apps.components.heartbeats import PingAction, heartbeat_ping, heartbeats_evaluate
from apps.components.models import ComponentState, HealthResult, Heartbeat
from tests.components.helpers import make_component

pytestmark = pytest.mark.django_db
CONTRACT = json.loads(
    (Path(__file__).parent / "contracts/healthchecks-ping-semantics.json").read_text()
)
# Not built: /log, and the ping-key + slug URLs (#5 asks for the uuid URLs only).
NOT_BUILT = {"log", "slug_variants"}
EXIT_STATUS = 7


def _quoted(text: str) -> str:
    return re.search(r"'([^']*)'", text).group(1)


def _calls():
    for name, spec in CONTRACT["endpoints"].items():
        if name in NOT_BUILT:
            continue
        methods, path = spec.split(" ", 1)
        path = path.replace("<0-255>", str(EXIT_STATUS))
        for method in methods.split("|"):
            yield pytest.param(name, method, path, id=f"{method} {path}")


def heartbeat() -> Heartbeat:
    component = make_component(kind="heartbeat", config={"period_seconds": 3600})
    return Heartbeat.objects.get(component=component)


def request(client, method: str, path: str, ping_uuid: uuid.UUID):
    url = "/ping" + path.replace("<uuid>", str(ping_uuid))
    return getattr(client, method.lower())(url)


def test_contract__endpoints__all_known():
    assert set(CONTRACT["endpoints"]) - NOT_BUILT == {
        "success",
        "start",
        "fail",
        "exit_status",
    }


@pytest.mark.parametrize(("name", "method", "path"), list(_calls()))
def test_contract__each_endpoint_and_method__200_ok(client, name, method, path):
    hb = heartbeat()
    response = request(client, method, path, hb.ping_uuid)
    assert response.status_code == 200
    if method != "HEAD":
        assert response.content.decode() == _quoted(CONTRACT["responses"]["200"])
    hb.refresh_from_db()
    # "start: last_ping NOT updated"; every other ping sets it.
    assert (hb.last_ping_at is None) == (name == "start")
    assert (hb.last_start_at is not None) == (name == "start")


@pytest.mark.parametrize(("name", "method", "path"), list(_calls()))
def test_contract__unknown_uuid__404_not_found(client, name, method, path):
    response = request(client, method, path, uuid.uuid4())
    assert response.status_code == 404
    if method != "HEAD":
        assert response.content.decode() == _quoted(CONTRACT["responses"]["404"])


def test_contract__exit_status_above_255__400(client):
    hb = heartbeat()
    response = client.get(f"/ping/{hb.ping_uuid}/256")
    assert response.status_code == 400
    assert response.content.decode() == _quoted(CONTRACT["responses"]["400"])


def _rule(action: str) -> str:
    return next(r["effect"] for r in CONTRACT["rules"] if r["action"] == action)


@pytest.mark.parametrize("code", [0, 1, 255])
def test_contract__exit_status_rule__success_or_fail(client, code):
    effect = _rule("exit_status")
    assert effect == "0 => success, 1..255 => fail, >255 => 400"
    hb = heartbeat()
    client.get(f"/ping/{hb.ping_uuid}/{code}")
    expected = "healthy" if code == 0 else "unhealthy"
    assert HealthResult.objects.get(component_id=hb.component_id).status == expected


def test_contract__rid_pairs_start_with_success__duration(client):
    assert "last_duration=now-last_start" in _rule("success|fail")
    hb = heartbeat()
    rid = uuid.uuid4()
    client.get(f"/ping/{hb.ping_uuid}/start?rid={rid}")
    client.get(f"/ping/{hb.ping_uuid}?rid={rid}")
    hb.refresh_from_db()
    assert hb.last_duration is not None
    assert hb.last_start_at is None


def test_contract__fail__down_immediately(client):
    assert "down immediately" in _rule("fail")
    hb = heartbeat()
    client.get(f"/ping/{hb.ping_uuid}")
    client.get(f"/ping/{hb.ping_uuid}/fail")
    state = ComponentState.objects.get(component_id=hb.component_id)
    assert state.state == "unhealthy"


def test_contract__start_past_grace__down():
    assert "last_start + grace: down" in CONTRACT["get_status"][0]
    hb = heartbeat()
    started = timezone.now()
    heartbeat_ping(ping_uuid=hb.ping_uuid, action=PingAction.START, now=started)
    grace = Config.model_validate(hb.component.config).grace
    assert heartbeats_evaluate(now=started + grace) == 1
    state = ComponentState.objects.get(component_id=hb.component_id)
    assert state.state == "unhealthy"


def test_contract__defaults__grace_one_hour():
    assert CONTRACT["defaults"]["grace"] == "1 hour"
    assert Config(period_seconds=60).grace == timedelta(hours=1)
