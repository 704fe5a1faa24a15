"""The flags admin: change requests, the per-row switch, refusals seen only on write."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from apps.core.models import AuditEvent
from apps.flags.admin_forms import FlagForm
from apps.flags.models import ChangeRequest, ChangeStatus, Flag
from apps.flags.services import flag_toggle
from tests.flags.test_admin import (
    _create,
    change_url,
    form_errors,
    form_post,
    signed_in,
)

pytestmark = pytest.mark.django_db

REQUESTS_URL = reverse("admin:flags_changerequest_changelist")
FLAGS_URL = reverse("admin:flags_flag_changelist")


def _switch_url(flag: Flag, state: str) -> str:
    return reverse("admin:flags_flag_switch", args=[flag.pk, state])


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_flag_change__requires_approval__redirected_to_opened_request(client):
    user = signed_in(client, role="operator")
    flag = _create("checkout", requires_approval=True)

    response = client.post(change_url(flag), form_post(flag, enabled=None))

    change = ChangeRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:flags_changerequest_change", args=[change.pk]
    )
    assert (change.author, change.changes) == (user, {"enabled": False})
    assert Flag.objects.get(key="checkout").enabled is True


def test_change_request_actions__author_approves__error_other_approves_applies(
    client,
):
    author = signed_in(client, role="operator")
    _create("checkout", requires_approval=True)
    change = flag_toggle(
        key="checkout", enabled=False, actor=author, reason="", source="admin"
    )
    selected = {ACTION_CHECKBOX_NAME: [str(change.pk)]}

    own = client.post(REQUESTS_URL, {"action": "approve", **selected}, follow=True)
    signed_in(client, role="operator")
    client.post(REQUESTS_URL, {"action": "approve", **selected})
    applied = client.post(REQUESTS_URL, {"action": "apply", **selected}, follow=True)

    assert any("cannot approve" in text for text in _messages(own))
    assert "Applied 1 of 1." in _messages(applied)
    change.refresh_from_db()
    assert (change.status, Flag.objects.get(key="checkout").enabled) == (
        ChangeStatus.APPLIED,
        False,
    )


def test_change_request_reject_action__reason_given__rejected_with_reason(client):
    signed_in(client, role="operator")
    _create("checkout", requires_approval=True)
    change = flag_toggle(
        key="checkout", enabled=False, actor=None, reason="", source="cli"
    )

    client.post(
        REQUESTS_URL,
        {
            "action": "reject",
            ACTION_CHECKBOX_NAME: [str(change.pk)],
            "confirm": "yes",
            "reason": "not now",
        },
    )

    change.refresh_from_db()
    assert (change.status, change.decision_reason) == (ChangeStatus.REJECTED, "not now")


def test_flag_switch_button__posted__reason_page_then_switched(client):
    signed_in(client, role="operator")
    flag = _create("checkout")

    page = client.post(_switch_url(flag, "off"))
    done = client.post(
        _switch_url(flag, "off"),
        {
            "action": "switch_off",
            ACTION_CHECKBOX_NAME: [str(flag.pk)],
            "confirm": "yes",
            "reason": "row button",
        },
    )

    assert b"Reason:" in page.content
    assert (done.status_code, done["Location"]) == (302, FLAGS_URL)
    event = AuditEvent.objects.get(action="flag.toggled")
    assert (event.reason, Flag.objects.get(key="checkout").enabled) == (
        "row button",
        False,
    )


def test_flag_changelist__operator__each_row_has_a_switch_button(client):
    signed_in(client, role="operator")
    flag = _create("checkout")

    response = client.get(FLAGS_URL)

    assert _switch_url(flag, "off").encode() in response.content


def test_flag_changelist__viewer__no_switch_buttons(client):
    signed_in(client, role="viewer")
    flag = _create("checkout")

    response = client.get(FLAGS_URL)

    assert response.status_code == 200
    assert _switch_url(flag, "off").encode() not in response.content


def test_flag_change__set_changes_after_clean__form_error_not_500(client, monkeypatch):
    # Given an operator switching on a flag whose requirement is on when the form
    # is checked, but switched off by someone else before the write
    signed_in(client, role="operator")
    _create("base")
    child = _create("child", enabled=False, requires=[{"flag": "base"}])
    clean = FlagForm.clean

    def clean_then_someone_switches_base_off(form):
        data = clean(form)
        if Flag.objects.get(key="base").enabled:
            flag_toggle(key="base", enabled=False, actor=None, reason="", source="cli")
        return data

    monkeypatch.setattr(FlagForm, "clean", clean_then_someone_switches_base_off)
    # When the form is saved
    response = client.post(change_url(child), form_post(child, enabled="on"))
    # Then the write's refusal is a form error, and the child is unchanged
    assert form_errors(response) == {"enabled": ["requires base, which is off"]}
    assert Flag.objects.get(key="child").enabled is False
