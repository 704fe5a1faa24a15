"""/api/v1/flags/{key}/change-requests: four-eyes changes over REST."""

import pytest

from apps.core.models import AuditEvent
from apps.flags.models import ChangeRequest, Flag, FlagVersion
from apps.flags.services import flag_create, flag_toggle
from tests.factories import bearer, make_token, make_user
from tests.flags.builders import flag_data

pytestmark = pytest.mark.django_db

JSON = "application/json"


def _create(key: str = "checkout", **overrides) -> Flag:
    return flag_create(
        key=key,
        data=flag_data(name=key, **overrides),
        actor=None,
        reason="",
        source=AuditEvent.Source.SYSTEM,
    )


def _operator() -> dict[str, str]:
    _, raw = make_token(user=make_user(role="operator"), scopes=("read", "write"))
    return bearer(raw)


def _url(key: str, request_id: int | None = None, step: str = "") -> str:
    base = f"/api/v1/flags/{key}/change-requests"
    tail = f"/{request_id}" if request_id is not None else ""
    return base + tail + (f"/{step}" if step else "")


def test_flags_toggle__requires_approval__202_change_request_flag_unchanged(client):
    _create(requires_approval=True)

    response = client.post(
        "/api/v1/flags/checkout/toggle",
        {"enabled": False, "reason": "incident"},
        JSON,
        headers=_operator(),
    )

    body = response.json()
    assert response.status_code == 202, body
    assert (body["flag"], body["status"], body["changes"]) == (
        "checkout",
        "open",
        {"enabled": False},
    )
    assert Flag.objects.get(key="checkout").enabled is True


def test_change_requests_approve__by_author__403_own_change_request(client):
    _create(requires_approval=True)
    author = _operator()
    opened = client.post(
        _url("checkout"), {"changes": {"enabled": False}}, JSON, headers=author
    ).json()

    response = client.post(_url("checkout", opened["id"], "approve"), headers=author)

    assert response.status_code == 403, response.json()
    assert response.json()["code"] == "own_change_request"


def test_change_requests__approved_by_other_then_applied__200_etag_and_applied(
    client,
):
    _create(requires_approval=True)
    author, other = _operator(), _operator()
    opened = client.post(
        _url("checkout"),
        {"changes": {"enabled": False}, "reason": "r"},
        JSON,
        headers=author,
    ).json()

    approved = client.post(_url("checkout", opened["id"], "approve"), headers=other)
    applied = client.post(_url("checkout", opened["id"], "apply"), headers=author)

    assert (approved.status_code, approved.json()["status"]) == (200, "approved")
    assert len(approved.json()["approvers"]) == 1
    assert (applied.status_code, applied.json()["enabled"]) == (200, False)
    assert applied.headers["ETag"] == '"2"'
    listed = client.get(_url("checkout") + "?status=applied", headers=author).json()
    assert [item["id"] for item in listed["items"]] == [opened["id"]]


def test_change_requests_edit__after_approval__approvals_voided_apply_409(client):
    _create(requires_approval=True)
    author, other = _operator(), _operator()
    opened = client.post(
        _url("checkout"), {"changes": {"enabled": False}}, JSON, headers=author
    ).json()
    client.post(_url("checkout", opened["id"], "approve"), headers=other)

    edited = client.patch(
        _url("checkout", opened["id"]),
        {"changes": {"name": "Renamed"}},
        JSON,
        headers=author,
    )
    applied = client.post(_url("checkout", opened["id"], "apply"), headers=author)

    assert (edited.json()["status"], edited.json()["approvers"]) == ("open", [])
    assert applied.status_code == 409, applied.json()
    assert Flag.objects.get(key="checkout").version == 1


def test_change_requests_apply__set_now_invalid__422_nothing_saved(client):
    _create("base")
    _create("child", enabled=False, requires=[{"flag": "base"}], requires_approval=True)
    author, other = _operator(), _operator()
    opened = client.post(
        _url("child"), {"changes": {"enabled": True}}, JSON, headers=author
    ).json()
    client.post(_url("child", opened["id"], "approve"), headers=other)
    flag_toggle(key="base", enabled=False, actor=None, reason="", source="system")
    versions = FlagVersion.objects.count()

    response = client.post(_url("child", opened["id"], "apply"), headers=author)

    body = response.json()
    assert response.status_code == 422, body
    assert body["extra"]["fields"] == {"enabled": ["requires base, which is off"]}
    assert (FlagVersion.objects.count(), Flag.objects.get(key="child").enabled) == (
        versions,
        False,
    )
    assert ChangeRequest.objects.get(pk=opened["id"]).status == "approved"


def test_change_requests_reject__empty_reason__422_and_still_open(client):
    _create(requires_approval=True)
    author = _operator()
    opened = client.post(
        _url("checkout"), {"changes": {"enabled": False}}, JSON, headers=author
    ).json()

    response = client.post(
        _url("checkout", opened["id"], "reject"),
        {"reason": ""},
        JSON,
        headers=_operator(),
    )

    assert response.status_code == 422, response.json()
    assert ChangeRequest.objects.get(pk=opened["id"]).status == "open"


def test_change_requests_approve__viewer_token__403(client):
    _create(requires_approval=True)
    opened = client.post(
        _url("checkout"), {"changes": {"enabled": False}}, JSON, headers=_operator()
    ).json()
    _, raw = make_token(user=make_user(role="viewer"), scopes=("read",))

    response = client.post(
        _url("checkout", opened["id"], "approve"), headers=bearer(raw)
    )

    assert response.status_code == 403
    assert ChangeRequest.objects.get(pk=opened["id"]).approvals.count() == 0
