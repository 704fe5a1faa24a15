"""An operator force-opens a breaker in the real admin with a reason; a viewer cannot
(issue #6 acceptance)."""

import pytest
from playwright.sync_api import Page, expect

from apps.breakers.models import BreakerEvent
from apps.breakers.services import breaker_register
from apps.core.models import AuditEvent
from apps.core.roles import OPERATOR, VIEWER
from tests.browser.test_admin import _log_in, _staff_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_breakers_admin__operator_force_opens_with_reason__fleet_state_and_audit(
    page: Page, web: str
):
    # Given a closed breaker and an operator signed in
    breaker_register(name="payments-api")
    username, password = _staff_user(OPERATOR)
    _log_in(page, username, password)
    page.goto("/admin/breakers/breaker/")
    row = page.locator("#result_list tbody tr", has_text="payments-api")
    expect(row).to_contain_text("CLOSED")

    # When they pick "Force open", give a reason and confirm
    row.locator("input.action-select").check()
    page.locator("select[name=action]").select_option("force_open")
    page.locator("button[name=index]").click()
    page.get_by_label("Reason:").fill("provider outage, stop hammering it")
    page.get_by_role("button", name="Confirm").click()

    # Then the list shows it forced open, and the event and audit say who and why
    expect(page.locator("ul.messagelist")).to_contain_text("Force open: 1 of 1.")
    expect(row).to_contain_text("FORCED_OPEN")
    event = BreakerEvent.objects.get(breaker__name="payments-api")
    assert (event.to_state, event.reason) == (
        "FORCED_OPEN",
        "provider outage, stop hammering it",
    )
    audit = AuditEvent.objects.get(action="breaker.force_open")
    assert audit.actor_label == username


def test_breakers_admin__viewer__sees_state_but_no_actions(page: Page, web: str):
    breaker_register(name="search-api")
    username, password = _staff_user(VIEWER)
    _log_in(page, username, password)

    page.goto("/admin/breakers/breaker/")

    expect(page.locator("#result_list tbody tr", has_text="search-api")).to_be_visible()
    expect(page.locator("select[name=action]")).to_have_count(0)
    assert not BreakerEvent.objects.exists()
