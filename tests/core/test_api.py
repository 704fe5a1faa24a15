from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone

from apps.core.models import ApiToken, AuditEvent
from apps.core.services import token_revoke
from tests.factories import bearer, make_token, make_user

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert set(body) == {"detail", "code", "extra"}
    assert body["code"] == code
    return body


def test_me__token__username_roles_scopes_prefix(client):
    user = make_user(username="ana", role="operator")
    token, raw = make_token(user=user, scopes=("read", "write"))
    body = client.get("/api/v1/me", headers=bearer(raw)).json()
    assert body == {
        "username": "ana",
        "roles": ["viewer", "operator"],
        "scopes": ["read", "write"],
        "token_prefix": token.prefix,
    }


def test_me__session__scopes_from_role_without_prefix(client):
    client.force_login(make_user(role="viewer"))
    body = client.get("/api/v1/me").json()
    assert (body["scopes"], body["token_prefix"]) == (["read"], None)


def test_me__no_credentials__401(client):
    assert_error(client.get("/api/v1/me"), 401, "not_authenticated")


@pytest.mark.parametrize(
    ("spoil", "code"),
    [
        ("unknown", "token_unknown"),
        ("malformed", "token_malformed"),
        ("expired", "token_expired"),
        ("revoked", "token_revoked"),
        ("inactive", "token_user_inactive"),
    ],
)
def test_api__bad_token__401_json_without_secret(client, spoil, code):
    # Given a token spoilt in one way
    token, raw = make_token()
    if spoil == "unknown":
        raw = raw[:-4] + "zzzz"
    elif spoil == "malformed":
        raw = raw + "!"
    elif spoil == "expired":
        ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    elif spoil == "revoked":
        token_revoke(token=token, actor=None, source=AuditEvent.Source.SYSTEM)
    else:
        User = type(token.user)
        User.objects.filter(pk=token.user_id).update(is_active=False)
    # When it is used, then a 401 with the one error shape and no secret echoed
    response = client.get("/api/v1/tokens", headers=bearer(raw))
    assert_error(response, 401, code)
    assert raw[12:] not in response.content.decode()


def test_api__non_bearer_authorization__401(client):
    response = client.get("/api/v1/me", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert_error(response, 401, "token_malformed")


def test_api__bad_bearer_with_valid_session__401(client):
    # A request that sends Authorization is judged by it alone.
    client.force_login(make_user(superuser=True))
    response = client.get("/api/v1/me", headers=bearer("opc_nope"))
    assert_error(response, 401, "token_malformed")


def test_tokens_create__read_token__403_names_scope(client):
    _, raw = make_token(user=make_user(role="operator"), scopes=("read",))
    response = client.post(
        "/api/v1/tokens",
        {"name": "ci", "scopes": ["read"]},
        "application/json",
        headers=bearer(raw),
    )
    body = assert_error(response, 403, "scope_missing")
    assert "'write'" in body["detail"]


def test_tokens_create__operator__201_secret_once(client):
    # Given an operator's write token
    user = make_user(role="operator")
    _, raw = make_token(user=user, scopes=("read", "write"))
    # When it creates a token
    response = client.post(
        "/api/v1/tokens",
        {"name": "deploy", "scopes": ["read"], "expires_at": "2099-01-01T00:00:00Z"},
        "application/json",
        headers=bearer(raw),
    )
    # Then the secret comes back once, works, and never appears in a list
    created = response.json()
    assert response.status_code == 201, created
    assert created["user"] == user.username
    assert created["token"].startswith(created["prefix"] + "_")
    me = client.get("/api/v1/me", headers=bearer(created["token"])).json()
    assert me["token_prefix"] == created["prefix"]
    listing = client.get("/api/v1/tokens", headers=bearer(raw))
    assert created["token"] not in listing.content.decode()
    assert all("token" not in row for row in listing.json())
    assert AuditEvent.objects.get(action="token.created", source="api").actor == user


def test_tokens_create__scope_beyond_calling_token__422(client):
    _, raw = make_token(user=make_user(role="operator"), scopes=("write",))
    response = client.post(
        "/api/v1/tokens",
        {"name": "x", "scopes": ["read"]},
        "application/json",
        headers=bearer(raw),
    )
    body = assert_error(response, 422, "validation_failed")
    assert "scopes" in body["extra"]["fields"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "", "scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": ["root"]}, "scopes.0"),
        ({"name": "x", "scopes": []}, "scopes"),
        (
            {"name": "x", "scopes": ["read"], "expires_at": "2099-01-01T00:00:00"},
            "expires_at",
        ),
        (
            {"name": "x", "scopes": ["read"], "expires_at": "2000-01-01T00:00:00Z"},
            "expires_at",
        ),
    ],
)
def test_tokens_create__bad_body__422_with_field(client, payload, field):
    _, raw = make_token(user=make_user(role="operator"), scopes=("read", "write"))
    response = client.post(
        "/api/v1/tokens", payload, "application/json", headers=bearer(raw)
    )
    body = assert_error(response, 422, "validation_failed")
    assert field in body["extra"]["fields"], body


def test_tokens_list__plain_token__only_own(client):
    mine, raw = make_token()
    make_token()
    prefixes = [
        row["prefix"]
        for row in client.get("/api/v1/tokens", headers=bearer(raw)).json()
    ]
    assert prefixes == [mine.prefix]


def test_tokens_list__admin_scope__everyone(client):
    _, raw = make_token(user=make_user(superuser=True), scopes=("read", "admin"))
    other, _ = make_token()
    rows = client.get("/api/v1/tokens", headers=bearer(raw)).json()
    assert other.prefix in {row["prefix"] for row in rows}
    assert {"status", "user", "last_used_at"} <= set(rows[0])


def test_tokens_revoke__own__200_then_token_refused(client):
    user = make_user(role="operator")
    victim, victim_raw = make_token(user=user, scopes=("read",))
    _, raw = make_token(user=user, scopes=("read", "write"))
    response = client.delete(
        f"/api/v1/tokens/{victim.prefix}?reason=rotated", headers=bearer(raw)
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "revoked"
    assert AuditEvent.objects.get(action="token.revoked").reason == "rotated"
    assert_error(
        client.get("/api/v1/me", headers=bearer(victim_raw)), 401, "token_revoked"
    )


def test_tokens_revoke__twice__409(client):
    user = make_user(role="operator")
    victim, _ = make_token(user=user)
    _, raw = make_token(user=user, scopes=("read", "write"))
    client.delete(f"/api/v1/tokens/{victim.prefix}", headers=bearer(raw))
    response = client.delete(f"/api/v1/tokens/{victim.prefix}", headers=bearer(raw))
    assert_error(response, 409, "token_already_revoked")


def test_tokens_revoke__someone_elses_without_admin__404(client):
    other, _ = make_token()
    _, raw = make_token(user=make_user(role="operator"), scopes=("write",))
    response = client.delete(f"/api/v1/tokens/{other.prefix}", headers=bearer(raw))
    assert_error(response, 404, "token_not_found")
    other.refresh_from_db()
    assert other.revoked_at is None


def test_tokens_revoke__someone_elses_with_admin__200(client):
    other, _ = make_token()
    _, raw = make_token(user=make_user(superuser=True), scopes=("write", "admin"))
    response = client.delete(f"/api/v1/tokens/{other.prefix}", headers=bearer(raw))
    assert response.status_code == 200
    other.refresh_from_db()
    assert other.revoked_at is not None


def test_token__role_taken_away__scope_no_longer_works(client):
    # Given an operator's write token
    user = make_user(role="operator")
    _, raw = make_token(user=user, scopes=("read", "write"))
    # When the user is demoted to viewer
    user.groups.set([Group.objects.get(name="viewer")])
    # Then the token keeps only what the role allows
    assert client.get("/api/v1/me", headers=bearer(raw)).json()["scopes"] == ["read"]
    response = client.post(
        "/api/v1/tokens",
        {"name": "x", "scopes": ["read"]},
        "application/json",
        headers=bearer(raw),
    )
    assert_error(response, 403, "scope_missing")


def test_tokens_create__group_lacks_permission__403_names_permission(client):
    _, raw = make_token(user=make_user(role="operator"), scopes=("read", "write"))
    add = Permission.objects.get(codename="add_apitoken")
    Group.objects.get(name="operator").permissions.remove(add)
    response = client.post(
        "/api/v1/tokens",
        {"name": "x", "scopes": ["read"]},
        "application/json",
        headers=bearer(raw),
    )
    body = assert_error(response, 403, "permission_missing")
    assert "core.add_apitoken" in body["detail"]


def test_session__post_without_csrf__403(db):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(role="operator"))
    response = client.post(
        "/api/v1/tokens", {"name": "x", "scopes": ["read"]}, "application/json"
    )
    assert_error(response, 403, "csrf_failed")
    assert not ApiToken.objects.exists()


def test_session__post_with_csrf__201(db):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user(role="operator"))
    client.get("/admin/")  # its logout form sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value
    response = client.post(
        "/api/v1/tokens",
        {"name": "x", "scopes": ["write"]},
        "application/json",
        headers={"X-CSRFToken": csrf},
    )
    assert response.status_code == 201, response.json()


def test_session__viewer_post__403(client):
    client.force_login(make_user(role="viewer"))
    response = client.post(
        "/api/v1/tokens", {"name": "x", "scopes": ["read"]}, "application/json"
    )
    assert_error(response, 403, "scope_missing")


def test_audit__viewer_token__filters_and_paginates(client):
    # Given two created tokens and one revoked
    _, raw = make_token()
    other, _ = make_token()
    token_revoke(token=other, actor=None, source=AuditEvent.Source.SYSTEM)
    # When the audit is read by action, one at a time
    response = client.get(
        "/api/v1/audit?action=token.created&limit=1", headers=bearer(raw)
    )
    # Then it counts all matches and returns the newest
    body = response.json()
    assert response.status_code == 200, body
    assert body["count"] == 2
    assert [item["target_label"] for item in body["items"]] == [str(other)]
    assert body["items"][0]["action"] == "token.created"


def test_audit__since_and_target_type__filters(client):
    _, raw = make_token()
    soon = (timezone.now() + timedelta(minutes=5)).isoformat()
    past = "2000-01-01T00:00:00+00:00"

    def count(since: str) -> int:
        query = {"target_type": "core.apitoken", "since": since}
        return client.get("/api/v1/audit", query, headers=bearer(raw)).json()["count"]

    assert (count(past), count(soon)) == (1, 0)


def test_audit__limit_above_200__422(client):
    _, raw = make_token()
    response = client.get("/api/v1/audit?limit=201", headers=bearer(raw))
    body = assert_error(response, 422, "validation_failed")
    assert "limit" in body["extra"]["fields"]


def test_audit__no_role__403(client):
    client.force_login(make_user())
    assert_error(client.get("/api/v1/audit"), 403, "scope_missing")


def test_openapi__schema__documents_endpoints_and_both_auths(client):
    schema = client.get("/api/v1/openapi.json").json()
    assert {
        "/api/v1/me",
        "/api/v1/tokens",
        "/api/v1/tokens/{prefix}",
        "/api/v1/audit",
    } <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"
    assert "ConsoleSessionAuth" in schema["components"]["securitySchemes"]
