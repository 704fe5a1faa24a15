import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from apps.core.models import ApiToken, AuditEvent
from apps.core.services import audit_record, token_authenticate, token_revoke
from tests.factories import make_token, make_user

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:core_apitoken_add")
TOKENS_URL = reverse("admin:core_apitoken_changelist")
AUDIT_URL = reverse("admin:core_auditevent_changelist")


def signed_in(client, **user_kwargs):
    user = make_user(**user_kwargs)
    client.force_login(user)
    return user


def test_token_add__superuser__token_shown_once_and_works(client):
    # Given a superuser in the admin and a viewer to make a token for
    admin_user = signed_in(client, superuser=True)
    owner = make_user(role="viewer")
    # When the add form is submitted
    response = client.post(
        ADD_URL, {"user": owner.pk, "name": "grafana", "scopes": ["read"]}, follow=True
    )
    # Then the success message holds the full token, which authenticates
    shown = [str(m) for m in response.context["messages"]]
    token = ApiToken.objects.get(name="grafana")
    secret_line = next(m for m in shown if token.prefix + "_" in m)
    raw = next(
        word for word in secret_line.split() if word.startswith(token.prefix + "_")
    )
    assert token_authenticate(raw=raw).pk == token.pk
    assert (token.user, token.scopes) == (owner, ["read"])
    event = AuditEvent.objects.get(action="token.created")
    assert (event.source, event.actor) == ("admin", admin_user)
    # And it never shows again, nor does its hash
    for url in (TOKENS_URL, reverse("admin:core_apitoken_change", args=[token.pk])):
        page = client.get(url).content.decode()
        assert raw not in page
        assert token.key_hash not in page


def test_token_add__scope_above_role__form_error_no_token(client):
    signed_in(client, superuser=True)
    owner = make_user(role="viewer")
    response = client.post(
        ADD_URL, {"user": owner.pk, "name": "x", "scopes": ["write"]}
    )
    assert response.status_code == 200
    assert "write" in str(response.context["adminform"].form.errors["scopes"])
    assert not ApiToken.objects.exists()


def test_token_add__operator__can_only_pick_self(client):
    operator = signed_in(client, role="operator")
    make_user(role="viewer")
    form = client.get(ADD_URL).context["adminform"].form
    assert list(form.fields["user"].queryset) == [operator]


def test_token_add__viewer__forbidden(client):
    signed_in(client, role="viewer")
    assert client.get(ADD_URL).status_code == 403


def revoke_via_action(client, token, reason="leaked in a ticket"):
    """The two steps: choose the action, then confirm on the reason page."""
    chosen = {"action": "revoke_selected", ACTION_CHECKBOX_NAME: [token.pk]}
    confirmation = client.post(TOKENS_URL, chosen)
    assert confirmation.status_code == 200
    assert 'name="reason"' in confirmation.content.decode()
    return client.post(
        TOKENS_URL, {**chosen, "confirm": "yes", "reason": reason}, follow=True
    )


def test_revoke_action__not_confirmed__shows_reason_page_and_changes_nothing(client):
    signed_in(client, role="operator")
    token, _ = make_token()
    response = client.post(
        TOKENS_URL, {"action": "revoke_selected", ACTION_CHECKBOX_NAME: [token.pk]}
    )
    assert response.status_code == 200
    assert str(token) in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is None
    assert not AuditEvent.objects.filter(action="token.revoked").exists()


def test_revoke_action__operator__revokes_and_audits(client):
    operator = signed_in(client, role="operator")
    token, _ = make_token()
    response = revoke_via_action(client, token)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert "Revoked 1 token(s); 0 already revoked." in response.content.decode()
    event = AuditEvent.objects.get(action="token.revoked")
    assert event.actor == operator
    assert event.reason == "leaked in a ticket"


def test_revoke_action__already_revoked__counted_not_failed(client):
    signed_in(client, role="operator")
    token, _ = make_token()
    token_revoke(token=token, actor=None, source=AuditEvent.Source.SYSTEM)
    response = revoke_via_action(client, token)
    assert "Revoked 0 token(s); 1 already revoked." in response.content.decode()


def test_revoke_action__viewer__not_offered_and_not_revoked(client):
    signed_in(client, role="viewer")
    token, _ = make_token()
    listing = client.get(TOKENS_URL)
    assert listing.status_code == 200
    assert "revoke_selected" not in listing.content.decode()
    forged = {
        "action": "revoke_selected",
        ACTION_CHECKBOX_NAME: [token.pk],
        "confirm": "yes",
        "reason": "x",
    }
    response = client.post(TOKENS_URL, forged)
    assert 'name="reason"' not in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is None


def test_token_change__superuser__view_only_no_delete(client):
    signed_in(client, superuser=True)
    token, _ = make_token()
    change_url = reverse("admin:core_apitoken_change", args=[token.pk])
    page = client.get(change_url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client.post(change_url, {"name": "renamed"}).status_code == 403
    delete_url = reverse("admin:core_apitoken_delete", args=[token.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    token.refresh_from_db()
    assert token.name == "test token"


def test_token_changelist__status_filter__only_that_status(client):
    signed_in(client, role="viewer")
    make_token(name="live")
    revoked, _ = make_token(name="dead")
    token_revoke(token=revoked, actor=None, source=AuditEvent.Source.SYSTEM)
    response = client.get(TOKENS_URL, {"status": "revoked"})
    shown = list(response.context["cl"].result_list)
    assert shown == [revoked]
    assert shown[0].status == "revoked"


def test_audit_admin__superuser__read_only(client):
    signed_in(client, superuser=True)
    event = audit_record(
        actor=None, action="thing.done", source=AuditEvent.Source.SYSTEM
    )
    listing = client.get(AUDIT_URL)
    assert listing.status_code == 200
    assert "thing.done" in listing.content.decode()
    assert "delete_selected" not in listing.content.decode()
    assert client.get(reverse("admin:core_auditevent_add")).status_code == 403
    change_url = reverse("admin:core_auditevent_change", args=[event.pk])
    assert 'name="_save"' not in client.get(change_url).content.decode()
    assert client.post(change_url, {"action": "x"}).status_code == 403
    delete_url = reverse("admin:core_auditevent_delete", args=[event.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403


def test_audit_admin__viewer__can_list(client):
    signed_in(client, role="viewer")
    audit_record(actor=None, action="thing.done", source=AuditEvent.Source.SYSTEM)
    assert "thing.done" in client.get(AUDIT_URL).content.decode()


def test_audit_admin__user_without_role__forbidden(client):
    signed_in(client)
    assert client.get(AUDIT_URL).status_code == 403
