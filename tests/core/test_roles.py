import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import Client

from apps.core.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from apps.core.roles import OPERATOR, VIEWER, allowed_scopes, grant, user_roles
from opsconsole.asgi import application
from tests.factories import make_user

VIEWER_PERMS = {"core.view_console", "core.view_auditevent", "core.view_apitoken"}


def group_perms(name: str) -> set[str]:
    perms = Group.objects.get(name=name).permissions.select_related("content_type")
    return {f"{p.content_type.app_label}.{p.codename}" for p in perms}


def test_migration_0003__viewer__can_view_console_audit_and_tokens(db):
    assert group_perms(VIEWER) >= VIEWER_PERMS
    assert not {"core.add_apitoken", "core.change_apitoken"} & group_perms(VIEWER)


def test_migration_0003__operator__viewer_perms_plus_token_changes(db):
    assert VIEWER_PERMS | {"core.add_apitoken", "core.change_apitoken"} <= group_perms(
        OPERATOR
    )


def test_grant__to_viewer__operator_gets_it_too(db):
    # Given a permission neither group has
    perm = Permission.objects.get(codename="view_user")
    assert perm.group_set.count() == 0
    # When a later migration grants it to viewers
    state_apps = MigrationLoader(connection).project_state().apps
    grant(state_apps, VIEWER, "auth", ["view_user"])
    # Then operators, who are viewers too, have it as well
    assert "auth.view_user" in group_perms(VIEWER) & group_perms(OPERATOR)


def test_grant__unknown_codename__lookup_error(db):
    state_apps = MigrationLoader(connection).project_state().apps
    with pytest.raises(LookupError, match="nope"):
        grant(state_apps, VIEWER, "core", ["nope"])


@pytest.mark.parametrize(
    ("role", "superuser", "active", "roles", "scopes"),
    [
        (None, False, True, [], set()),
        (VIEWER, False, True, [VIEWER], {"read"}),
        (OPERATOR, False, True, [VIEWER, OPERATOR], {"read", "write"}),
        (None, True, True, [VIEWER, OPERATOR], {"read", "write", "admin"}),
        (OPERATOR, False, False, [], set()),
    ],
)
def test_user_roles__by_group__roles_and_scopes(
    db, role, superuser, active, roles, scopes
):
    user = make_user(role=role, superuser=superuser, active=active)
    assert user_roles(user) == roles
    assert allowed_scopes(user) == scopes


def test_viewer__has_view_console_not_change(db):
    viewer = make_user(role=VIEWER)
    assert viewer.has_perm("core.view_console")
    assert not viewer.has_perm("core.change_apitoken")


# --- WebSocket: the console consumer over the real ASGI app and channel layer ---
# Channels runs its DB work in other threads, so these tests commit their data.
committed = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def socket_headers(
    user=None, origin: str = "http://localhost"
) -> list[tuple[bytes, bytes]]:
    headers = [(b"origin", origin.encode())]
    if user is not None:
        client = Client()
        client.force_login(user)
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        headers.append(
            (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode())
        )
    return headers


def open_session_socket(
    headers: list[tuple[bytes, bytes]],
) -> tuple[bool, object, dict | None]:
    """Connect to /ws/session/; (connected, close code or subprotocol, first message)."""

    async def scenario() -> tuple[bool, object, dict | None]:
        communicator = WebsocketCommunicator(
            application, "/ws/session/", headers=headers
        )
        connected, detail = await communicator.connect(timeout=5)
        message = await communicator.receive_json_from(timeout=5) if connected else None
        await communicator.disconnect()
        return connected, detail, message

    return async_to_sync(scenario)()


@committed
def test_session_socket__anonymous__closed_4401():
    connected, code, _ = open_session_socket(socket_headers())
    assert (connected, code) == (False, CLOSE_UNAUTHENTICATED)


@committed
def test_session_socket__user_without_role__closed_4403():
    connected, code, _ = open_session_socket(socket_headers(make_user()))
    assert (connected, code) == (False, CLOSE_FORBIDDEN)


@committed
def test_session_socket__viewer__accepted_with_session_message():
    viewer = make_user(username="vera", role=VIEWER)
    connected, _, message = open_session_socket(socket_headers(viewer))
    assert connected
    assert message == {"type": "session", "user": "vera", "roles": [VIEWER]}


@committed
def test_session_socket__foreign_origin__rejected():
    viewer = make_user(role=VIEWER)
    connected, _, message = open_session_socket(
        socket_headers(viewer, "https://evil.example")
    )
    assert not connected
    assert message is None
