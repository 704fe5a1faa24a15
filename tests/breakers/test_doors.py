"""Services and their doors: API, admin, CLI, /readyz."""

import json
import uuid
from io import StringIO

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import CommandError, call_command
from django.urls import reverse

from apps.breakers.agent import default_agent
from apps.breakers.models import Breaker, BreakerEvent
from apps.breakers.services import breaker_act, breaker_configure
from apps.core.exceptions import ValidationFailed
from apps.core.models import AuditEvent
from tests.factories import bearer, make_token, make_user

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:breakers_breaker_changelist")


@pytest.fixture
def dep() -> Breaker:
    return Breaker.objects.create(name=f"dep-{uuid.uuid4().hex[:8]}")


def _fleet_state(name: str) -> str:
    return default_agent().fleet.read_states([name])[name].get("state", "")


def test_breaker_act__force_open__fleet_state_event_and_audit_with_reason(dep):
    operator = make_user(role="operator")

    event = breaker_act(
        name=dep.name,
        action="force_open",
        actor=operator,
        reason="vendor outage",
        source=AuditEvent.Source.API,
    )

    assert _fleet_state(dep.name) == "FORCED_OPEN"
    assert (event.from_state, event.to_state, event.origin) == (
        "CLOSED",
        "FORCED_OPEN",
        "operator",
    )
    audit = AuditEvent.objects.get(action="breaker.force_open", target_id=dep.pk)
    assert audit.reason == "vendor outage"
    assert audit.after == {"state": "FORCED_OPEN"}


def test_breaker_act__blank_reason__refused_and_nothing_changes(dep):
    with pytest.raises(ValidationFailed) as refused:
        breaker_act(
            name=dep.name,
            action="disable",
            actor=None,
            reason="  ",
            source=AuditEvent.Source.CLI,
        )
    assert "reason" in refused.value.fields
    assert _fleet_state(dep.name) == ""
    assert not BreakerEvent.objects.exists()


def test_breaker_configure__invalid_config__field_errors_and_row_unchanged(dep):
    with pytest.raises(ValidationFailed) as refused:
        breaker_configure(
            name=dep.name,
            changes={"wait_duration_ms": 5000, "max_wait_duration_ms": 10},
            actor=None,
            reason="",
            source=AuditEvent.Source.API,
        )
    assert "max_wait_duration_ms" in refused.value.fields
    dep.refresh_from_db()
    assert dep.max_wait_duration_ms == 60_000


def test_breaker_configure__half_open_max_wait__negative_refused_zero_kept(dep):
    with pytest.raises(ValidationFailed) as refused:
        breaker_configure(
            name=dep.name,
            changes={"max_wait_in_half_open_ms": -1},
            actor=None,
            reason="",
            source=AuditEvent.Source.API,
        )
    assert "max_wait_in_half_open_ms" in refused.value.fields

    breaker_configure(
        name=dep.name,
        changes={"max_wait_in_half_open_ms": 0},
        actor=None,
        reason="wait for the permitted calls, as resilience4j does",
        source=AuditEvent.Source.API,
    )

    dep.refresh_from_db()
    assert dep.config().max_wait_in_half_open_ms == 0


def test_breakers_api__viewer__lists_but_cannot_force(client, dep):
    _, raw = make_token(user=make_user(role="viewer"), scopes=("read",))

    listed = client.get("/api/v1/breakers", headers=bearer(raw))
    forced = client.post(
        f"/api/v1/breakers/{dep.name}/force-open",
        {"reason": "x"},
        content_type="application/json",
        headers=bearer(raw),
    )

    assert listed.status_code == 200
    row = next(b for b in listed.json() if b["name"] == dep.name)
    assert row["state"] == "CLOSED"
    assert row["config"]["minimum_calls"] == 100
    assert forced.status_code == 403
    assert forced.json()["code"] == "scope_missing"


def test_breakers_api__operator_resets__event_returned_and_listed_in_detail(
    client, dep
):
    _, raw = make_token(user=make_user(role="operator"), scopes=("read", "write"))

    response = client.post(
        f"/api/v1/breakers/{dep.name}/reset",
        {"reason": "recovered"},
        content_type="application/json",
        headers=bearer(raw),
    )
    detail = client.get(f"/api/v1/breakers/{dep.name}", headers=bearer(raw)).json()

    assert response.status_code == 200, response.json()
    assert response.json()["to_state"] == "CLOSED"
    assert [e["reason"] for e in detail["events"]] == ["recovered"]
    assert detail["last_transition_at"] is not None


def test_breakers_api__unknown_breaker__404_in_the_one_error_shape(client):
    _, raw = make_token(user=make_user(role="viewer"), scopes=("read",))
    response = client.get("/api/v1/breakers/nope", headers=bearer(raw))
    assert response.status_code == 404
    assert set(response.json()) == {"detail", "code", "extra"}


def test_breaker_admin__changelist__state_colored_with_rates_and_calls(client, dep):
    client.force_login(make_user(role="viewer"))

    page = client.get(CHANGELIST).content.decode()

    assert dep.name in page
    assert '<strong style="color:#1a7f37">CLOSED</strong>' in page
    assert "calls in window" in page.lower()
    assert "slow-call rate" in page.lower()


def test_breaker_admin__operator_forces_open_with_reason__fleet_state_changes(
    client, dep
):
    client.force_login(make_user(role="operator"))

    response = client.post(
        CHANGELIST,
        {
            "action": "force_open",
            ACTION_CHECKBOX_NAME: [dep.pk],
            "confirm": "yes",
            "reason": "maintenance window",
        },
    )

    assert response.status_code == 302
    assert _fleet_state(dep.name) == "FORCED_OPEN"
    assert AuditEvent.objects.get(action="breaker.force_open").source == "admin"


def test_breaker_admin__viewer_posts_force_open__refused(client, dep):
    client.force_login(make_user(role="viewer"))

    client.post(
        CHANGELIST,
        {
            "action": "force_open",
            ACTION_CHECKBOX_NAME: [dep.pk],
            "confirm": "yes",
            "reason": "x",
        },
    )

    assert _fleet_state(dep.name) == ""
    assert not AuditEvent.objects.filter(action="breaker.force_open").exists()


def test_breakers_command__disable_then_list_json__state_shown(dep):
    out = StringIO()
    call_command("breakers", "disable", dep.name, "--reason", "noisy", stdout=out)
    call_command("breakers", "list", "--format", "json", stdout=out)

    text = out.getvalue()
    assert text.startswith(f"{dep.name}: CLOSED -> DISABLED.")
    rows = json.loads(text.split("\n", 1)[1])
    assert {"name": dep.name, "state": "DISABLED"}.items() <= next(
        row for row in rows if row["name"] == dep.name
    ).items()


def test_breakers_command__csv_events__header_and_one_row(dep):
    call_command("breakers", "force-open", dep.name, "--reason", "r", stdout=StringIO())
    out = StringIO()
    call_command("breakers", "events", dep.name, "--format", "csv", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "at,from,to,origin,actor,reason"
    assert lines[1].endswith(",CLOSED,FORCED_OPEN,operator,,r")


def test_breakers_command__unknown_breaker__one_line_command_error():
    with pytest.raises(CommandError, match="no breaker 'nope'"):
        call_command("breakers", "show", "nope")


def test_readyz__breakers_entry__reports_pass_or_warn(client):
    body = client.get("/readyz").json()
    assert body["checks"]["breakers"]["status"] == "pass"
