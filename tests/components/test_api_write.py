"""The components REST API's writes: create and patch, field errors, perms."""

import pytest

from apps.components.models import Component
from apps.components.notifications.models import NotificationChannel
from apps.components.selectors import MASK
from apps.core.models import AuditEvent
from tests.components.helpers import make_component
from tests.core.test_api import assert_error
from tests.factories import bearer, make_token, make_user

pytestmark = pytest.mark.django_db
URL = "/api/v1/components"
PLANTED = "api-planted-secret"
DSN = f"postgresql://app:{PLANTED}@127.0.0.1:1/app"


@pytest.fixture
def operator():
    user = make_user(role="operator")
    return bearer(make_token(user=user, scopes=("read", "write"))[1])


def test_create__operator__201_masked_and_audited(client, operator):
    # Given a dependency and a channel to name
    make_component(slug="net")
    NotificationChannel.objects.create(
        name="ops", kind="email", config={"to": ["ops@example.com"]}
    )
    body = {
        "name": "Main DB",
        "slug": "db",
        "kind": "postgres",
        "config": {"dsn": DSN},
        "depends_on": ["net"],
        "notification_channels": ["ops"],
    }
    # When an operator creates a component holding a secret
    response = client.post(URL, body, content_type="application/json", headers=operator)
    # Then it is stored, answered with the secret masked, and audited
    assert response.status_code == 201
    assert PLANTED not in response.content.decode()
    shown = response.json()
    assert (shown["config"], shown["depends_on"]) == ({"dsn": MASK}, ["net"])
    component = Component.objects.get(slug="db")
    assert component.config == {"dsn": DSN}
    assert [c.name for c in component.notification_channels.all()] == ["ops"]
    event = AuditEvent.objects.get(action="component.created", target_id=component.pk)
    assert (event.source, event.after["config"]) == ("api", {"dsn": MASK})


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"config": {"url": "ftp://x"}}, "config.url"),
        ({"config": {"url": "http://x/", "colour": 1}}, "config.colour"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"depends_on": ["nope"]}, "depends_on"),
        ({"slug": "has space"}, "slug"),
    ],
)
def test_create__invalid__422_on_field_path_nothing_saved(client, operator, body, path):
    full = {
        "name": "Web",
        "slug": "web",
        "kind": "http",
        "config": {"url": "http://x/"},
    }
    response = client.post(
        URL, {**full, **body}, content_type="application/json", headers=operator
    )
    error = assert_error(response, 422, "validation_failed")
    assert path in error["extra"]["fields"]
    assert not Component.objects.exists()


def test_create__viewer_token__403(client):
    viewer = bearer(make_token(scopes=("read",))[1])
    body = {"name": "W", "slug": "w", "kind": "http", "config": {"url": "http://x/"}}
    response = client.post(URL, body, content_type="application/json", headers=viewer)
    assert_error(response, 403, "scope_missing")
    assert not Component.objects.exists()


def test_patch__masked_secret_back__kept_and_not_echoed(client, operator):
    # Given a component with a DSN, read back masked
    make_component(slug="db", kind="postgres", config={"dsn": DSN})
    shown = client.get(f"{URL}/db", headers=operator).json()["config"]
    # When the masked config comes back with other changes
    patch = {"config": {**shown, "query": "SELECT 2"}, "interval_seconds": 60}
    response = client.patch(
        f"{URL}/db",
        {**patch, "reason": "slower"},
        content_type="application/json",
        headers=operator,
    )
    # Then the secret is kept, the rest changed, and nothing echoes the secret
    assert response.status_code == 200
    assert PLANTED not in response.content.decode()
    assert response.json()["interval_seconds"] == 60
    component = Component.objects.get(slug="db")
    assert component.config == {"dsn": DSN, "query": "SELECT 2"}
    event = AuditEvent.objects.get(action="component.changed")
    assert (event.reason, set(event.after)) == (
        "slower",
        {"config", "interval_seconds"},
    )


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"config": {"url": "ftp://x"}}, "config.url"),
        ({"slug": "renamed"}, "slug"),
        ({"name": None}, "name"),
        ({"depends_on": ["web"]}, "depends_on"),
    ],
)
def test_patch__invalid__422_on_field_path_unchanged(client, operator, body, path):
    make_component(slug="web", config={"url": "http://x/"})
    response = client.patch(
        f"{URL}/web", body, content_type="application/json", headers=operator
    )
    error = assert_error(response, 422, "validation_failed")
    assert path in error["extra"]["fields"]
    assert Component.objects.get(slug="web").config == {"url": "http://x/"}


def test_patch__unknown_slug__404(client, operator):
    response = client.patch(
        f"{URL}/nope", {"name": "x"}, content_type="application/json", headers=operator
    )
    assert_error(response, 404, "component_not_found")
