"""The components admin: list columns and filters, read-only detail, actions."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin import site
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from apps.components.admin import UPTIME_NONE, uptime_window_text
from apps.components.heartbeats import PingAction, heartbeat_ping
from apps.components.models import (
    Component,
    ComponentState,
    HealthResult,
    Heartbeat,
    MaintenanceWindow,
    StateChange,
)
from apps.components.selectors import MASK
from apps.components.services import component_uptimes_refresh
from apps.core.models import AuditEvent
from tests.components.helpers import checks_rolled, make_component
from tests.factories import make_user

pytestmark = pytest.mark.django_db
LIST_URL = reverse("admin:components_component_changelist")
PLANTED = "admin-planted-secret"


def signed_in(client, **user_kwargs):
    user = make_user(**user_kwargs)
    client.force_login(user)
    return user


def results(component, statuses, *, hours_ago=1):
    """``statuses`` as checks ``hours_ago`` back, rolled up, uptimes refreshed."""
    at = timezone.now() - timedelta(hours=hours_ago)
    made = HealthResult.objects.bulk_create(
        HealthResult(component=component, status=s, latency_ms=5, checked_at=at)
        for s in statuses
    )
    checks_rolled(made)
    component_uptimes_refresh(now=timezone.now())


def failing_heartbeat(slug):
    component = make_component(
        kind="heartbeat", slug=slug, config={"period_seconds": 60}
    )
    beat = Heartbeat.objects.get(component=component)
    heartbeat_ping(ping_uuid=beat.ping_uuid, action=PingAction.FAIL, now=timezone.now())
    return component


def test_changelist__viewer__state_colored_and_uptime_24h(client):
    # Given a component with 3 of 4 results up today and a failure 2 days ago
    signed_in(client, role="viewer")
    component = make_component(slug="web")
    results(component, ["healthy", "degraded", "healthy", "unhealthy"])
    results(component, ["unhealthy"], hours_ago=48)
    # When a viewer lists components
    response = client.get(LIST_URL)
    # Then the uptime counts only the last 24 h, says which 24 h in its tooltip,
    # and the state is colored
    page = response.content.decode()
    kept = ComponentState.objects.get(component=component)
    window = uptime_window_text(kept.uptime_24h_until)
    assert response.status_code == 200
    assert f'<span title="{window}">75.00 %</span>' in page
    assert "refreshed every minute" in window
    assert "&#9679; unknown" in page
    assert "check_now" not in page


def test_changelist__checks_over_two_days__uptime_of_the_24_whole_hours_before(
    client,
):
    # Given checks every 50 minutes over two days, one in three down
    signed_in(client, role="viewer")
    component = make_component(slug="api-hours")
    now = timezone.now()
    made = HealthResult.objects.bulk_create(
        HealthResult(
            component=component,
            status="unhealthy" if n % 3 == 0 else "healthy",
            latency_ms=5,
            checked_at=now - timedelta(minutes=50 * n),
        )
        for n in range(58)
    )
    checks_rolled(made)
    component_uptimes_refresh(now=now)
    # When a viewer lists components
    (row,) = client.get(LIST_URL).context["cl"].result_list
    # Then the column is the raw results' share up over the last 24 whole hours
    hour = now.replace(minute=0, second=0, microsecond=0)
    window = [r for r in made if hour - timedelta(hours=24) <= r.checked_at < hour]
    up = sum(r.status != "unhealthy" for r in window)
    assert row.uptime_pct == pytest.approx(up * 100 / len(window), abs=1e-9)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("", ["up-poor", "up-fine", "up-full", "up-stateless", "up-none"]),
        ("-", ["up-full", "up-fine", "up-poor", "up-stateless", "up-none"]),
    ],
)
def test_changelist__sorted_by_uptime__either_way_none_last(client, order, expected):
    # Given three components with uptimes, one without checks, one without a state
    signed_in(client, role="viewer")
    fine, poor = make_component(slug="up-fine"), make_component(slug="up-poor")
    full = make_component(slug="up-full")
    make_component(slug="up-none")
    make_component(slug="up-stateless").state.delete()
    results(fine, ["healthy", "healthy", "healthy", "unhealthy"])
    results(poor, ["unhealthy", "healthy"])
    results(full, ["healthy"])
    # When a viewer sorts the list by the uptime column, up or down
    column = client.get(LIST_URL).context["cl"].list_display.index("uptime_24h")
    response = client.get(LIST_URL, {"o": f"{order}{column}"})
    # Then the figures are in that order, the ones without a figure last and shown
    # as a dash, and the column header says which way it is sorted
    shown = response.context["cl"].result_list
    assert [c.slug for c in shown] == expected
    assert [c.uptime_pct for c in shown][:3] == sorted(
        [50.0, 75.0, 100.0], reverse=order == "-"
    )
    page = response.content.decode()
    assert page.count(f'<td class="field-uptime_24h">{UPTIME_NONE}</td>') == 2
    sorted_class = "sorted descending" if order else "sorted ascending"
    assert f'class="sortable column-uptime_24h {sorted_class}"' in page


def test_changelist__state_filter__only_that_state(client):
    signed_in(client, role="viewer")
    failing = failing_heartbeat("cron-down")
    make_component(slug="web-unknown")
    response = client.get(LIST_URL, {"state": "unhealthy"})
    assert list(response.context["cl"].result_list) == [failing]


def test_changelist__tag_filter_and_search__match(client):
    signed_in(client, role="viewer")
    tagged = make_component(slug="db-main", tags=["prod", "db"])
    make_component(slug="web-other", tags=["staging"])
    by_tag = client.get(LIST_URL, {"tag": "db"}).context["cl"].result_list
    by_search = client.get(LIST_URL, {"q": "db-main"}).context["cl"].result_list
    assert list(by_tag) == list(by_search) == [tagged]


def test_change_page__viewer__read_only_masked_limited_results(client):
    # Given a postgres component with a planted password and 60 results
    signed_in(client, role="viewer")
    dsn = f"postgresql://app:{PLANTED}@127.0.0.1:1/app"
    component = make_component(kind="postgres", config={"dsn": dsn})
    results(component, ["healthy"] * 60)
    # When its page is opened
    url = reverse("admin:components_component_change", args=[component.pk])
    response = client.get(url)
    page = response.content.decode()
    # Then it is read-only, masks the secret and lists only the latest 50 results
    assert response.status_code == 200
    assert PLANTED not in page
    assert MASK in page
    assert 'name="_save"' not in page
    inline = next(
        f
        for f in response.context["inline_admin_formsets"]
        if f.opts.model is HealthResult
    )
    assert len(inline.formset.queryset) == 50
    assert client.post(url, {"name": "renamed"}).status_code == 403


def test_change_page__heartbeat__shows_ping_url(client):
    signed_in(client, role="viewer")
    component = make_component(kind="heartbeat", config={"period_seconds": 60})
    beat = Heartbeat.objects.get(component=component)
    url = reverse("admin:components_component_change", args=[component.pk])
    assert f"/ping/{beat.ping_uuid}" in client.get(url).content.decode()


def act(client, name, components, reason="planned work"):
    """Choose the action, then confirm it on the reason page when one is asked."""
    chosen = {"action": name, ACTION_CHECKBOX_NAME: [c.pk for c in components]}
    first = client.post(LIST_URL, chosen, follow=True)
    if 'name="reason"' not in first.content.decode():
        return first
    return client.post(
        LIST_URL, {**chosen, "confirm": "yes", "reason": reason}, follow=True
    )


def test_action_check_now__operator__requested_and_heartbeat_skipped(client):
    operator = signed_in(client, role="operator")
    polled = make_component(slug="web")
    pushed = make_component(kind="heartbeat", config={"period_seconds": 60})
    response = act(client, "check_now", [polled, pushed])
    assert "Done for 1; skipped 1." in response.content.decode()
    event = AuditEvent.objects.get(action="component.check_requested")
    assert (event.actor, event.source, event.target_id) == (
        operator,
        "admin",
        str(polled.pk),
    )
    assert Component.objects.get(pk=polled.pk).claimed_until is not None


def test_action_pause_then_resume__operator__flag_and_audit_with_reason(client):
    signed_in(client, role="operator")
    component = make_component()
    act(client, "pause", [component], reason="noisy vendor")
    assert Component.objects.get(pk=component.pk).paused
    act(client, "resume", [component], reason="vendor fixed")
    assert not Component.objects.get(pk=component.pk).paused
    reasons = dict(
        AuditEvent.objects.filter(action__startswith="component.").values_list(
            "action", "reason"
        )
    )
    assert reasons["component.paused"] == "noisy vendor"
    assert reasons["component.resumed"] == "vendor fixed"


def test_action_maintenance__start_then_end__window_open_then_closed(client):
    signed_in(client, role="operator")
    component = make_component()
    act(client, "maintenance_start", [component], reason="db upgrade")
    window = MaintenanceWindow.objects.get(component=component)
    assert window.is_open(timezone.now())
    assert window.reason == "db upgrade"
    response = act(client, "maintenance_end", [component], reason="done early")
    window.refresh_from_db()
    assert not window.is_open(timezone.now())
    assert "Done for 1; skipped 0." in response.content.decode()


def test_action_maintenance_start__no_reason__asks_again(client):
    signed_in(client, role="operator")
    component = make_component()
    response = act(client, "maintenance_start", [component], reason="")
    assert 'name="reason"' in response.content.decode()
    assert not MaintenanceWindow.objects.exists()


def test_action_pause__viewer_forged__not_paused(client):
    signed_in(client, role="viewer")
    component = make_component()
    forged = {
        "action": "pause",
        ACTION_CHECKBOX_NAME: [component.pk],
        "confirm": "yes",
        "reason": "x",
    }
    client.post(LIST_URL, forged)
    assert not Component.objects.get(pk=component.pk).paused


@pytest.mark.parametrize("model", ["healthresult", "statechange"])
def test_history_admins__superuser__listed_read_only(client, model):
    signed_in(client, superuser=True)
    failing_heartbeat("cron-down")
    row = (HealthResult if model == "healthresult" else StateChange).objects.first()
    listing = client.get(reverse(f"admin:components_{model}_changelist"))
    assert listing.status_code == 200
    assert "cron-down" in listing.content.decode()
    assert client.get(reverse(f"admin:components_{model}_add")).status_code == 403
    change_url = reverse(f"admin:components_{model}_change", args=[row.pk])
    assert 'name="_save"' not in client.get(change_url).content.decode()
    assert client.post(change_url, {"message": "x"}).status_code == 403


def test_changelist__action_checkbox__same_markup_as_the_stock_one():
    component = make_component(slug="escaped")
    component.slug = '<web> & "co"'  # shown escaped, as the stock one does
    model_admin = site._registry[Component]
    assert model_admin.action_checkbox(component) == admin.ModelAdmin.action_checkbox(
        model_admin, component
    )
