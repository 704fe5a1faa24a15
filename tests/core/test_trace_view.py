"""One trace id, every record it caused: the trace API and page (issue #8 item 5)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.breakers.services import breaker_act, breaker_register
from apps.components.models import HealthResult, StateChange
from apps.core import trace
from apps.core.models import AuditEvent
from apps.core.roles import VIEWER
from tests.components.helpers import make_component
from tests.factories import bearer, make_token, make_user

# breaker_act writes on commit; the role groups must survive the flush.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def traced():
    """An operator action, a check and a state change under one trace, plus noise."""
    ctx = trace.new_trace()
    token = trace.bind(ctx)
    try:
        component = make_component(slug="traced-db")
        breaker_register(name="traced-breaker")
        breaker_act(
            name="traced-breaker",
            action="force_open",
            actor=None,
            reason="drill",
            source=AuditEvent.Source.CLI,
        )
    finally:
        trace.unbind(token)
    now = timezone.now()
    HealthResult.objects.create(
        component=component,
        status="unhealthy",
        latency_ms=12.0,
        message="refused",
        checked_at=now + timedelta(seconds=1),
        trace_id=ctx.trace_id,
    )
    StateChange.objects.create(
        component=component,
        from_state="healthy",
        to_state="unhealthy",
        at=now + timedelta(seconds=2),
        trace_id=ctx.trace_id,
    )
    HealthResult.objects.create(
        component=component, status="healthy", latency_ms=1.0, trace_id="f" * 32
    )
    return ctx.trace_id


def test_trace_api__records_of_one_trace__all_kinds_oldest_first(client, traced):
    raw = make_token(scopes=("read",))[1]

    response = client.get(f"/api/v1/traces/{traced}", headers=bearer(raw))

    assert response.status_code == 200
    items = response.json()
    kinds = [item["kind"] for item in items]
    assert set(kinds) == {"audit", "breaker", "check", "state"}
    assert kinds[-2:] == ["check", "state"]
    assert [item["at"] for item in items] == sorted(item["at"] for item in items)
    assert not any("healthy (1 ms)" in item["summary"] for item in items)
    assert any("traced-breaker" in item["summary"] for item in items)


def test_trace_api__not_a_trace_id__422_naming_the_field(client):
    raw = make_token(scopes=("read",))[1]

    response = client.get("/api/v1/traces/not-hex", headers=bearer(raw))

    assert response.status_code == 422
    assert "trace_id" in response.json()["extra"]["fields"]


def test_trace_api__no_token__401(client, traced):
    assert client.get(f"/api/v1/traces/{traced}").status_code == 401


def test_trace_page__viewer__lists_the_records_with_links(client, traced):
    client.force_login(make_user(role=VIEWER))

    response = client.get(f"/admin/trace/{traced}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "traced-db: healthy → unhealthy" in page
    assert "/admin/components/component/" in page


def test_trace_page__anonymous__sent_to_login(client, traced):
    response = client.get(f"/admin/trace/{traced}/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
