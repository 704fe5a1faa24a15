"""A secret planted in component configs never leaves: admin, API, /health, CLI."""

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from apps.components.models import Component, HealthResult, StateChange
from apps.components.services import component_check_now, components_run_batch
from apps.core.models import AuditEvent
from tests.components.helpers import make_component
from tests.factories import bearer, make_token, make_user

pytestmark = pytest.mark.django_db
PLANTED = "Pl4nted-s3cret-xyzzy"
# Nothing listens on port 1: the checks fail for real, with their real messages.
CONFIGS = {
    "pg": ("postgres", {"dsn": f"postgresql://app:{PLANTED}@127.0.0.1:1/app"}),
    "cache": ("redis", {"url": f"redis://:{PLANTED}@127.0.0.1:1/0"}),
    "web": (
        "http",
        {
            "url": f"http://probe:{PLANTED}@127.0.0.1:1/health",
            "headers": {"Authorization": f"Bearer {PLANTED}"},
        },
    ),
}


@pytest.fixture
def checked(django_capture_on_commit_callbacks):
    """Components holding the secret, each checked once (and failed) for real."""
    for slug, (kind, config) in CONFIGS.items():
        make_component(
            slug=slug, kind=kind, config=config, failure_threshold=1, timeout_seconds=2
        )
        with django_capture_on_commit_callbacks(execute=False):
            claimed = component_check_now(
                slug=slug, actor=None, source=AuditEvent.Source.SYSTEM
            )
        components_run_batch(
            component_ids=[claimed.pk], claim_token=claimed.claim_token
        )
    assert StateChange.objects.filter(to_state="unhealthy").count() == len(CONFIGS)
    return Component.objects.filter(slug__in=CONFIGS)


def test_secret__admin_pages__never_shown(client, checked):
    client.force_login(make_user(superuser=True))
    urls = [
        reverse("admin:components_component_changelist"),
        reverse("admin:components_healthresult_changelist"),
        reverse("admin:components_statechange_changelist"),
        reverse("admin:core_auditevent_changelist"),
    ]
    for component in checked:
        urls.append(reverse("admin:components_component_change", args=[component.pk]))
        urls.append(reverse("admin:components_component_history", args=[component.pk]))
    for result in HealthResult.objects.filter(component__in=checked):
        urls.append(reverse("admin:components_healthresult_change", args=[result.pk]))
    for event in AuditEvent.objects.all():
        urls.append(reverse("admin:core_auditevent_change", args=[event.pk]))
    pages = {url: client.get(url) for url in urls}
    assert {url: page.status_code for url, page in pages.items()} == dict.fromkeys(
        urls, 200
    )
    leaked = [url for url, page in pages.items() if PLANTED in page.content.decode()]
    assert leaked == []


def test_secret__api_and_health__never_shown(client, checked):
    headers = bearer(make_token(scopes=("read",))[1])
    urls = ["/api/v1/components", "/health", "/api/v1/audit"]
    for slug in CONFIGS:
        base = f"/api/v1/components/{slug}"
        urls += [base, f"{base}/results", f"{base}/incidents"]
    bodies = {url: client.get(url, headers=headers) for url in urls}
    assert bodies["/health"].json()["checks"]["pg"][0]["status"] == "fail"
    assert bodies["/api/v1/components"].json()["count"] == len(CONFIGS)
    leaked = [url for url, body in bodies.items() if PLANTED in body.content.decode()]
    assert leaked == []


@pytest.mark.parametrize("output_format", ["table", "json", "csv"])
def test_secret__cli_health__never_shown(checked, output_format):
    out = io.StringIO()
    call_command("health", "--format", output_format, stdout=out)
    printed = out.getvalue()
    assert "pg" in printed
    assert PLANTED not in printed


def test_secret__cli_checknow__never_shown(checked):
    out = io.StringIO()
    call_command("checknow", "pg", stdout=out)
    assert "pg" in out.getvalue()
    assert PLANTED not in out.getvalue()


def test_secret__admin_change_forms__masked_in_initial_json(client, checked):
    # Operators edit here: the config field's value is the masked config.
    client.force_login(make_user(role="operator"))
    for component in checked:
        url = reverse("admin:components_component_change", args=[component.pk])
        page = client.get(url).content.decode()
        assert 'name="config"' in page
        assert PLANTED not in page
