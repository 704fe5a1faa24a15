import hashlib
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.exceptions import (
    AuthenticationFailed,
    Conflict,
    PermissionDenied,
    ValidationFailed,
)
from apps.core.models import ApiToken, AuditEvent
from apps.core.services import token_authenticate, token_create, token_revoke
from tests.factories import make_token, make_user

pytestmark = pytest.mark.django_db


def test_token_create__valid__stores_only_hash_and_prefix(db):
    # Given an operator
    user = make_user(role="operator")
    # When a token is created
    token, raw = make_token(user=user, scopes=("read", "write"))
    # Then the secret has the documented shape and only its hash is stored
    assert re.fullmatch(r"opc_[a-z0-9]{8}_[A-Za-z0-9]{43}", raw)
    assert token.prefix == raw[:12]
    assert token.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert all(raw[12:] not in str(value) for value in row.values())


def test_token_create__twice__secrets_and_prefixes_differ(db):
    user = make_user(role="viewer")
    (first, raw1), (second, raw2) = make_token(user=user), make_token(user=user)
    assert raw1 != raw2
    assert first.prefix != second.prefix


def test_token_create__valid__audits_without_secret(db):
    token, raw = make_token()
    event = AuditEvent.objects.get(action="token.created")
    assert event.target_id == str(token.pk)
    assert event.target_type == "core.apitoken"
    assert event.after["prefix"] == token.prefix
    assert raw not in str(event.after)
    assert token.key_hash not in str(event.after)


@pytest.mark.parametrize(
    ("role", "superuser", "scopes", "allowed"),
    [
        ("viewer", False, ["read"], True),
        ("viewer", False, ["write"], False),
        ("operator", False, ["read", "write"], True),
        ("operator", False, ["admin"], False),
        (None, True, ["read", "write", "admin"], True),
        (None, False, ["read"], False),
    ],
)
def test_token_create__scopes_vs_role__capped_by_role(
    db, role, superuser, scopes, allowed
):
    # Given a user with a role
    user = make_user(role=role, superuser=superuser)
    # When a token with these scopes is asked for, then only the role's scopes pass
    if allowed:
        token, _ = make_token(user=user, scopes=tuple(scopes))
        assert token.scopes == scopes
    else:
        with pytest.raises(ValidationFailed) as exc:
            make_token(user=user, scopes=tuple(scopes))
        assert "scopes" in exc.value.fields
        assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"scopes": []}, "scopes"),
        ({"scopes": ["root"]}, "scopes"),
        ({"name": "  "}, "name"),
        ({"expires_at": timezone.now() - timedelta(minutes=1)}, "expires_at"),
    ],
)
def test_token_create__bad_input__validation_failed_on_field(db, changes, field):
    values = {"name": "ci", "scopes": ["read"], "expires_at": None} | changes
    with pytest.raises(ValidationFailed) as exc:
        token_create(
            user=make_user(role="operator"),
            actor=None,
            source=AuditEvent.Source.SYSTEM,
            **values,
        )
    assert list(exc.value.fields) == [field]


def test_token_create__ceiling__caps_scopes_further(db):
    user = make_user(superuser=True)
    with pytest.raises(ValidationFailed) as exc:
        token_create(
            user=user,
            name="x",
            scopes=["admin"],
            expires_at=None,
            actor=user,
            source=AuditEvent.Source.API,
            ceiling=frozenset({"read", "write"}),
        )
    assert "admin" in exc.value.fields["scopes"][0]


def test_token_create__operator_for_someone_else__permission_denied(db):
    operator, other = make_user(role="operator"), make_user(superuser=True)
    with pytest.raises(PermissionDenied):
        token_create(
            user=other,
            name="x",
            scopes=["admin"],
            expires_at=None,
            actor=operator,
            source=AuditEvent.Source.ADMIN,
        )


def test_token_authenticate__valid__returns_token_and_touches(db):
    token, raw = make_token()
    found = token_authenticate(raw=raw)
    assert found.pk == token.pk
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "nonsense",
        "opc_short_x",
        "opc_ABCDEFGH_" + "a" * 43,
        "opc_abcdefgh_" + "a" * 42,
    ],
)
def test_token_authenticate__malformed__token_malformed(db, raw):
    with pytest.raises(AuthenticationFailed) as exc:
        token_authenticate(raw=raw)
    assert exc.value.code == "token_malformed"


def test_token_authenticate__well_formed_unknown__token_unknown(db):
    _, raw = make_token()
    with pytest.raises(AuthenticationFailed) as exc:
        token_authenticate(raw=raw[:-1] + ("b" if raw[-1] != "b" else "c"))
    assert exc.value.code == "token_unknown"


def test_token_authenticate__expired__token_expired(db):
    token, raw = make_token()
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    with pytest.raises(AuthenticationFailed) as exc:
        token_authenticate(raw=raw)
    assert exc.value.code == "token_expired"


def test_token_authenticate__revoked__token_revoked(db):
    token, raw = make_token()
    token_revoke(token=token, actor=None, source=AuditEvent.Source.SYSTEM)
    with pytest.raises(AuthenticationFailed) as exc:
        token_authenticate(raw=raw)
    assert exc.value.code == "token_revoked"


def test_token_authenticate__inactive_user__token_user_inactive(db):
    token, raw = make_token()
    token.user.is_active = False
    token.user.save()
    with pytest.raises(AuthenticationFailed) as exc:
        token_authenticate(raw=raw)
    assert exc.value.code == "token_user_inactive"


def test_token_authenticate__used_again_soon__no_second_write(
    db, settings, django_assert_num_queries
):
    # Given a token used a moment ago
    settings.OPSCONSOLE_TOKEN_TOUCH_SECONDS = 60
    token, raw = make_token()
    token_authenticate(raw=raw)
    token.refresh_from_db()
    first_use = token.last_used_at
    # When it is used again within the window, then only the lookup runs
    with django_assert_num_queries(1):
        token_authenticate(raw=raw)
    token.refresh_from_db()
    assert token.last_used_at == first_use


def test_token_authenticate__window_passed__touches_again(db, settings):
    settings.OPSCONSOLE_TOKEN_TOUCH_SECONDS = 60
    token, raw = make_token()
    old = timezone.now() - timedelta(seconds=61)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=old)
    token_authenticate(raw=raw)
    token.refresh_from_db()
    assert token.last_used_at > old


def test_token_revoke__twice__conflict(db):
    token, _ = make_token()
    token_revoke(token=token, actor=None, source=AuditEvent.Source.SYSTEM)
    with pytest.raises(Conflict):
        token_revoke(token=token, actor=None, source=AuditEvent.Source.SYSTEM)
    assert AuditEvent.objects.filter(action="token.revoked").count() == 1


def test_token_revoke__with_reason__audited(db):
    actor = make_user(superuser=True)
    token, _ = make_token()
    revoked = token_revoke(
        token=token, actor=actor, source=AuditEvent.Source.ADMIN, reason="leaked"
    )
    event = AuditEvent.objects.get(action="token.revoked")
    assert revoked.revoked_at is not None
    assert (event.actor_label, event.source, event.reason) == (
        actor.username,
        "admin",
        "leaked",
    )
    assert event.before == {"revoked_at": None}
