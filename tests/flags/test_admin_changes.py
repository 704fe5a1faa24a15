"""The flags admin: change requests, the per-row switch, refusals seen only on write."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from apps.core.models import AuditEvent
from apps.flags.admin_forms import FlagForm
from apps.flags.models import ChangeRequest, ChangeStatus, Flag
from apps.flags.services import (
    change_request_approve,
    change_request_create,
    change_request_reject,
    flag_toggle,
)
from tests.factories import make_user
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


def _request_url(change: ChangeRequest) -> str:
    return reverse("admin:flags_changerequest_change", args=[change.pk])


def _proposed(key: str, changes: dict, author=None) -> ChangeRequest:
    return change_request_create(
        key=key, changes=changes, actor=author, reason="first", source="cli"
    )


def test_change_request_edit__approved_then_edited__new_revision_needs_approval(
    client,
):
    # Given a request another operator has approved
    _create("checkout", requires_approval=True)
    change = _proposed("checkout", {"description": "first"})
    change_request_approve(
        key="checkout",
        request_id=change.pk,
        actor=make_user(role="operator"),
        source="cli",
    )
    assert ChangeRequest.objects.get().status == ChangeStatus.APPROVED
    # When an operator edits what it proposes in the admin
    signed_in(client, role="operator")
    response = client.post(
        _request_url(change),
        {"changes": '{"description": "second"}', "reason": "rewritten"},
    )
    # Then it proposes the edit as a new revision, open again: the approval lapsed
    change.refresh_from_db()
    assert response.status_code == 302
    assert (change.changes, change.reason, change.revision, change.status) == (
        {"description": "second"},
        "rewritten",
        2,
        ChangeStatus.OPEN,
    )
    assert AuditEvent.objects.filter(action="flag.change_request_edited").count() == 1
    assert Flag.objects.get(key="checkout").description == ""


def test_change_request_edit__breaks_the_set__error_on_changes_nothing_saved(client):
    signed_in(client, role="operator")
    _create("base", enabled=False)
    _create("child", enabled=False, requires=[{"flag": "base"}])
    change = _proposed("child", {"description": "first"})

    response = client.post(
        _request_url(change), {"changes": '{"enabled": true}', "reason": ""}
    )

    assert form_errors(response) == {
        "changes": ["enabled: requires base, which is off"]
    }
    change.refresh_from_db()
    assert (change.changes, change.revision) == ({"description": "first"}, 1)


def test_change_request_edit__unknown_field__error_on_changes(client):
    signed_in(client, role="operator")
    _create("checkout")
    change = _proposed("checkout", {"description": "first"})

    response = client.post(
        _request_url(change), {"changes": '{"colour": "red"}', "reason": ""}
    )

    assert form_errors(response) == {"changes": ["Unknown fields: colour."]}


def test_change_request_page__pending_for_operator__editable_with_save(client):
    signed_in(client, role="operator")
    _create("checkout")
    change = _proposed("checkout", {"description": "first"})

    response = client.get(_request_url(change))

    form = response.context["adminform"].form
    assert sorted(form.fields) == ["changes", "reason"]
    assert b'name="_save"' in response.content


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_change_request_page__viewer_or_decided__read_only(client, role):
    signed_in(client, role=role)
    _create("checkout")
    change = _proposed("checkout", {"description": "first"})
    if role == "operator":
        change_request_reject(
            key="checkout", request_id=change.pk, actor=None, reason="no", source="cli"
        )

    response = client.get(_request_url(change))

    assert response.status_code == 200
    assert list(response.context["adminform"].form.fields) == []
    assert b'name="_save"' not in response.content


def test_change_request_edit__decided_meanwhile__refusal_on_form_not_500(client):
    signed_in(client, role="operator")
    _create("checkout")
    change = _proposed("checkout", {"description": "first"})
    change_request_reject(
        key="checkout", request_id=change.pk, actor=None, reason="no", source="cli"
    )

    response = client.post(
        _request_url(change), {"changes": '{"description": "x"}', "reason": ""}
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.non_field_errors() == [
        f"change request #{change.pk} is rejected already"
    ]
    change.refresh_from_db()
    assert change.changes == {"description": "first"}


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
