"""Four-eyes changes: change requests opened, approved by another, edited, applied."""

import pytest

from apps.core.exceptions import (
    Conflict,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from apps.core.models import AuditEvent
from apps.flags.models import ChangeRequest, ChangeStatus, Flag, FlagVersion
from apps.flags.services import (
    change_request_apply,
    change_request_approve,
    change_request_create,
    change_request_reject,
    change_request_update,
    flag_create,
    flag_toggle,
)
from tests.factories import make_user
from tests.flags.builders import flag_data

pytestmark = pytest.mark.django_db

API = AuditEvent.Source.API


def _create(key: str = "checkout", **overrides) -> Flag:
    return flag_create(
        key=key, data=flag_data(**overrides), actor=None, reason="", source=API
    )


def _propose_off(author, key: str = "checkout") -> ChangeRequest:
    change = flag_toggle(
        key=key, enabled=False, actor=author, reason="incident 42", source=API
    )
    assert isinstance(change, ChangeRequest)
    return change


def _written() -> tuple[int, int]:
    return FlagVersion.objects.count(), AuditEvent.objects.count()


def test_flag_toggle__requires_approval__request_opened_flag_unchanged():
    # Given a flag that requires approval
    _create(requires_approval=True)
    author = make_user(role="operator")
    # When an operator switches it off
    change = _propose_off(author)
    # Then a change request waits, and the flag is as it was
    flag = Flag.objects.get(key="checkout")
    assert (change.status, change.changes, change.author) == (
        ChangeStatus.OPEN,
        {"enabled": False},
        author,
    )
    assert (flag.enabled, flag.version) == (True, 1)
    assert AuditEvent.objects.filter(action="flag.change_request_opened").count() == 1


def test_change_request_approve__by_its_author__403_and_not_approved():
    _create(requires_approval=True)
    author = make_user(role="operator")
    change = _propose_off(author)

    with pytest.raises(PermissionDenied) as caught:
        change_request_approve(
            key="checkout", request_id=change.pk, actor=author, source=API
        )

    change.refresh_from_db()
    assert (caught.value.status, change.status, change.approvals.count()) == (
        403,
        ChangeStatus.OPEN,
        0,
    )


def test_change_request_apply__approved_by_another__flag_changed_versioned_audited():
    _create(requires_approval=True)
    author, approver = make_user(role="operator"), make_user(role="operator")
    change = _propose_off(author)
    change_request_approve(
        key="checkout", request_id=change.pk, actor=approver, source=API
    )

    flag = change_request_apply(
        key="checkout", request_id=change.pk, actor=author, source=API
    )

    change.refresh_from_db()
    version = FlagVersion.objects.get(flag=flag, version=2)
    assert (flag.enabled, flag.version) == (False, 2)
    assert (change.status, change.applied_version) == (ChangeStatus.APPLIED, 2)
    assert (version.reason, version.actor) == ("incident 42", author)
    assert AuditEvent.objects.filter(action="flag.toggled").count() == 1


def test_change_request_update__after_approval__approval_void_apply_refused():
    _create(requires_approval=True)
    author, approver = make_user(role="operator"), make_user(role="operator")
    change = _propose_off(author)
    change_request_approve(
        key="checkout", request_id=change.pk, actor=approver, source=API
    )

    edited = change_request_update(
        key="checkout",
        request_id=change.pk,
        changes={"name": "Checkout v2"},
        actor=author,
        reason="rename instead",
        source=API,
    )
    with pytest.raises(Conflict):
        change_request_apply(
            key="checkout", request_id=change.pk, actor=author, source=API
        )

    assert (edited.status, edited.revision) == (ChangeStatus.OPEN, 2)
    assert Flag.objects.get(key="checkout").version == 1


def test_change_request_approve__by_who_edited_it__403_a_third_operator_can():
    # Given a request whose current revision another operator wrote
    _create(requires_approval=True)
    author, editor, third = (make_user(role="operator") for _ in range(3))
    change = _propose_off(author)
    change_request_update(
        key="checkout",
        request_id=change.pk,
        changes={"name": "Checkout v2"},
        actor=editor,
        reason="rename instead",
        source=API,
    )
    # When the editor approves it, then a third operator does
    with pytest.raises(PermissionDenied) as caught:
        change_request_approve(
            key="checkout", request_id=change.pk, actor=editor, source=API
        )
    approved = change_request_approve(
        key="checkout", request_id=change.pk, actor=third, source=API
    )
    # Then only the third operator's approval counts
    assert caught.value.status == 403
    assert (approved.status, approved.revised_by) == (ChangeStatus.APPROVED, editor)
    assert list(approved.approvals.values_list("approver", flat=True)) == [third.pk]


def test_change_request_apply__set_invalid_since_approval__422_nothing_saved():
    # Given a request to switch on a flag whose requirement is on, approved
    _create("base")
    _create("child", enabled=False, requires=[{"flag": "base"}], requires_approval=True)
    author, approver = make_user(role="operator"), make_user(role="operator")
    change = flag_toggle(key="child", enabled=True, actor=author, reason="", source=API)
    change_request_approve(
        key="child", request_id=change.pk, actor=approver, source=API
    )
    # ...and the requirement switched off meanwhile
    flag_toggle(key="base", enabled=False, actor=None, reason="", source=API)
    written = _written()
    # When it is applied
    with pytest.raises(ValidationFailed) as caught:
        change_request_apply(
            key="child", request_id=change.pk, actor=author, source=API
        )
    # Then the whole set is checked as it is now, and nothing is saved
    change.refresh_from_db()
    child = Flag.objects.get(key="child")
    assert caught.value.fields == {"enabled": ["requires base, which is off"]}
    assert (child.enabled, child.version, change.status) == (
        False,
        1,
        ChangeStatus.APPROVED,
    )
    assert _written() == written


def test_change_request_create__invalid_changes__422_nothing_opened():
    _create()

    with pytest.raises(ValidationFailed) as caught:
        change_request_create(
            key="checkout",
            changes={"default_variant": "maybe"},
            actor=None,
            reason="",
            source=API,
        )

    assert "default_variant" in caught.value.fields
    assert not ChangeRequest.objects.exists()


def test_change_request_reject__without_reason__422_then_with_reason_rejected():
    _create(requires_approval=True)
    change = _propose_off(make_user(role="operator"))
    reviewer = make_user(role="operator")

    with pytest.raises(ValidationFailed):
        change_request_reject(
            key="checkout", request_id=change.pk, actor=reviewer, reason=" ", source=API
        )
    rejected = change_request_reject(
        key="checkout",
        request_id=change.pk,
        actor=reviewer,
        reason="not during the sale",
        source=API,
    )
    with pytest.raises(Conflict):
        change_request_approve(
            key="checkout", request_id=change.pk, actor=reviewer, source=API
        )

    assert (rejected.status, rejected.decision_reason, rejected.decided_by) == (
        ChangeStatus.REJECTED,
        "not during the sale",
        reviewer,
    )


def test_change_request_approve__wrong_flag_key__not_found():
    _create(requires_approval=True)
    _create("other")
    change = _propose_off(make_user(role="operator"))

    with pytest.raises(NotFound):
        change_request_approve(
            key="other",
            request_id=change.pk,
            actor=make_user(role="operator"),
            source=API,
        )

    assert change.approvals.count() == 0
