"""Adding and changing components in the admin, through the services."""

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.components.models import Component, HealthResult
from apps.components.selectors import MASK
from apps.components.services import components_dispatch_due, components_run_batch
from apps.core.models import AuditEvent
from tests.components.admin_forms import posted
from tests.components.helpers import make_component
from tests.factories import make_user

pytestmark = pytest.mark.django_db
ADD_URL = reverse("admin:components_component_add")
PLANTED = "edit-planted-secret"


def change_url(component):
    return reverse("admin:components_component_change", args=[component.pk])


def new_component(**changes):
    form = {
        "name": "Web",
        "slug": "web",
        "kind": "http",
        "config": '{"url": "http://127.0.0.1:9/"}',
        "interval_seconds": "30",
        "timeout_seconds": "5",
        "retries": "0",
        "failure_threshold": "1",
        "success_threshold": "1",
        "enabled": "on",
    }
    return {**form, **changes}


def test_admin_add__valid_config__created_and_checked(
    client, target, django_capture_on_commit_callbacks
):
    # Given an operator in the admin
    operator = make_user(role="operator")
    client.force_login(operator)
    config = json.dumps({"url": target.url("/health")})
    # When they add an HTTP component pointing at a live target
    response = client.post(ADD_URL, new_component(config=config, tags="prod,web"))
    # Then it is registered through the service, audited, and checked when due
    assert response.status_code == 302
    component = Component.objects.get(slug="web")
    assert (component.config, component.tags) == (
        {"url": target.url("/health")},
        ["prod", "web"],
    )
    event = AuditEvent.objects.get(action="component.created")
    assert (event.actor, event.source) == (operator, "admin")
    with django_capture_on_commit_callbacks(execute=False):
        assert components_dispatch_due(now=timezone.now()) == 1
    component.refresh_from_db()
    components_run_batch(
        component_ids=[component.pk], claim_token=component.claim_token
    )
    assert HealthResult.objects.get(component=component).status == "healthy"
    assert target.hits["/health"] == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('{"url": "ftp://x"}', "config.url: Value error, must start with http://"),
        ('{"url": "http://x/", "colour": 1}', "config.colour: Extra inputs"),
        ('{"url": "http://x/",\n "method": }', "Not valid JSON at line 2, column 12"),
    ],
)
def test_admin_add__bad_config__form_error_on_config_nothing_saved(
    client, config, message
):
    client.force_login(make_user(role="operator"))
    response = client.post(ADD_URL, new_component(config=config))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["config"]
    assert message in " ".join(errors["config"])
    assert not Component.objects.exists()


def test_admin_add_page__kind_fields__listed_as_help(client):
    client.force_login(make_user(role="operator"))
    page = client.get(ADD_URL).content.decode()
    assert "<b>postgres</b>: dsn: str | None = null (secret)" in page
    assert "period_seconds: int | None = null" in page


def test_admin_add__viewer__403_and_no_add_button(client):
    client.force_login(make_user(role="viewer"))
    listing = client.get(reverse("admin:components_component_changelist"))
    assert listing.status_code == 200
    assert ADD_URL not in listing.content.decode()
    assert client.get(ADD_URL).status_code == 403
    assert client.post(ADD_URL, new_component()).status_code == 403
    assert not Component.objects.exists()


def test_admin_change__secret_left_masked__stored_secret_kept(client):
    # Given a postgres component whose DSN holds a password
    client.force_login(make_user(role="operator"))
    dsn = f"postgresql://app:{PLANTED}@127.0.0.1:1/app"
    component = make_component(kind="postgres", config={"dsn": dsn, "query": "x"})
    # When an operator opens it (the secret shows masked) and saves a new query
    page = client.get(change_url(component))
    assert PLANTED not in page.content.decode()
    shown = json.loads(page.context["adminform"].form["config"].value())
    assert shown == {"dsn": MASK, "query": "x"}
    form = posted(page, name="Main DB", config=json.dumps({**shown, "query": "y"}))
    response = client.post(change_url(component), form)
    # Then the password is kept, the rest changed, and the audit row masks it
    assert response.status_code == 302
    component.refresh_from_db()
    assert (component.name, component.config) == ("Main DB", {"dsn": dsn, "query": "y"})
    event = AuditEvent.objects.get(action="component.changed")
    assert event.after == {"name": "Main DB", "config": {"dsn": MASK, "query": "y"}}
    assert PLANTED not in json.dumps([event.before, event.after])


def test_admin_change__mask_edited_around__form_error_secret_kept(client):
    client.force_login(make_user(role="operator"))
    url = f"https://probe:{PLANTED}@old.example/health"
    component = make_component(config={"url": url})
    page = client.get(change_url(component))
    edited = {"url": f"https://probe:{MASK}@new.example/health"}
    response = client.post(
        change_url(component), posted(page, config=json.dumps(edited))
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["config"]
    assert "config.url: Still holds the mask" in " ".join(errors)
    component.refresh_from_db()
    assert component.config == {"url": url}


def test_admin_change__dependency_cycle__form_error_on_depends_on(client):
    client.force_login(make_user(role="operator"))
    db = make_component(slug="db")
    web = make_component(slug="web", depends_on=[db])
    page = client.get(change_url(db))
    response = client.post(change_url(db), posted(page, depends_on=[web.pk]))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["depends_on"] == ["Would close a cycle: db → web → db"]
    assert list(db.depends_on.all()) == []


def test_admin_change__slug_posted__stays_fixed(client):
    client.force_login(make_user(role="operator"))
    component = make_component(slug="web")
    page = client.get(change_url(component))
    response = client.post(change_url(component), posted(page, slug="renamed"))
    assert response.status_code == 302
    assert Component.objects.get(pk=component.pk).slug == "web"


def test_admin_change__viewer__read_only_403(client):
    client.force_login(make_user(role="viewer"))
    component = make_component(slug="web")
    page = client.get(change_url(component))
    assert 'name="_save"' not in page.content.decode()
    assert client.post(change_url(component), {"name": "x"}).status_code == 403
    assert Component.objects.get(pk=component.pk).name == component.name


def test_admin_delete__superuser__deleted_and_audited(client):
    client.force_login(make_user(superuser=True))
    db = make_component(slug="db")
    make_component(slug="web", depends_on=[db])
    url = reverse("admin:components_component_delete", args=[db.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert list(Component.objects.values_list("slug", flat=True)) == ["web"]
    event = AuditEvent.objects.get(action="component.deleted")
    assert event.before["dependents"] == ["web"]
