"""An operator switches a flag off in the real admin, through the reason page."""

import pytest
from playwright.sync_api import Page, expect

from apps.core.models import AuditEvent
from apps.core.roles import OPERATOR
from apps.flags.models import Flag
from apps.flags.services import flag_create
from tests.browser.test_admin import _log_in, _staff_user
from tests.flags.builders import flag_data

# daphne is another process: data must be committed, and the roles and console
# switches the migrations made must come back after the flush (serialized_rollback).
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_flags_admin__operator_switches_flag_off_with_reason__row_shows_off(
    page: Page, web: str
):
    # Given a flag that is on, and an operator signed in
    flag_create(
        key="checkout-banner",
        data=flag_data(name="Checkout banner"),
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )
    username, password = _staff_user(OPERATOR)
    _log_in(page, username, password)
    page.goto("/admin/flags/flag/")
    row = page.locator("#result_list tbody tr", has_text="checkout-banner")
    expect(row.locator("td.field-state")).to_have_text("ON")

    # When the operator picks "switch off", gives a reason and confirms
    row.locator("input.action-select").check()
    page.locator("select[name=action]").select_option("switch_off")
    page.locator("button[name=index]").click()
    page.get_by_label("Reason:").fill("banner breaks checkout on Safari")
    page.get_by_role("button", name="Confirm").click()

    # Then the list says so, the row shows OFF, and the change is stored with why
    expect(page.locator("ul.messagelist")).to_contain_text("Switched off 1 of 1.")
    expect(row.locator("td.field-state")).to_have_text("OFF")
    flag = Flag.objects.get(key="checkout-banner")
    assert (flag.enabled, flag.version) == (False, 2)
    event = AuditEvent.objects.get(action="flag.toggled")
    assert (event.actor_label, event.reason) == (
        username,
        "banner breaks checkout on Safari",
    )


def test_flags_admin__operator_switches_on_with_requirement_off__field_error(
    page: Page, web: str
):
    # Given a flag that requires another one, which is off
    for key, extra in (("base", {}), ("child", {"requires": [{"flag": "base"}]})):
        flag_create(
            key=key,
            data=flag_data(name=key, enabled=False, **extra),
            actor=None,
            reason="",
            source=AuditEvent.Source.SYSTEM,
        )
    username, password = _staff_user(OPERATOR)
    _log_in(page, username, password)
    child = Flag.objects.get(key="child")

    # When the operator ticks "enabled" in its change form and saves
    page.goto(f"/admin/flags/flag/{child.pk}/change/")
    page.locator("input[name=enabled]").check()
    page.locator("input[name=_save]").click()

    # Then the error is shown on the "enabled" field and nothing changed
    expect(page.locator(".field-enabled .errorlist")).to_contain_text(
        "requires base, which is off"
    )
    assert Flag.objects.get(key="child").enabled is False
