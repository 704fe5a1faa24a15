"""The doors: API, admin, CLI call the same services."""

import json
from io import StringIO

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import CommandError, call_command
from django.urls import reverse

from apps.components.selectors import MASK
from apps.core.models import AuditEvent
from apps.healing.models import Episode, HealingPolicy
from tests.components.helpers import make_component
from tests.factories import bearer, make_token, make_user
from tests.healing.helpers import SECRET, make_policy

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:healing_healingpolicy_changelist")


def _webhook_policy() -> HealingPolicy:
    config = {"url": "http://127.0.0.1:9/heal", "secret": SECRET}
    return make_policy(make_component(), action="webhook", config=config)


def test_api__heal_now_by_operator__episode_active_and_audited(
    client, django_capture_on_commit_callbacks
):
    policy = _webhook_policy()
    _, raw = make_token(user=make_user(role="operator"), scopes=("read", "write"))

    with django_capture_on_commit_callbacks():  # the attempt task is not sent
        response = client.post(
            f"/api/v1/healing/policies/{policy.component.slug}/heal",
            {"reason": "customer report"},
            content_type="application/json",
            headers=bearer(raw),
        )

    assert response.status_code == 200, response.content
    assert response.json()["episode"] == Episode.ACTIVE
    assert response.json()["config"]["secret"] == MASK
    audit = AuditEvent.objects.get(action="healing.heal_now")
    assert (audit.source, audit.reason) == ("api", "customer report")


def test_api__heal_now_by_viewer__403_and_nothing_changes(client):
    policy = _webhook_policy()
    _, raw = make_token(user=make_user(role="viewer"), scopes=("read",))

    response = client.post(
        f"/api/v1/healing/policies/{policy.component.slug}/heal",
        {"reason": "x"},
        content_type="application/json",
        headers=bearer(raw),
    )

    assert response.status_code == 403
    policy.refresh_from_db()
    assert policy.episode == Episode.IDLE


def test_admin__operator_pauses_with_reason__policy_paused_and_audited(client):
    policy = _webhook_policy()
    client.force_login(make_user(role="operator"))

    response = client.post(
        CHANGELIST,
        {
            "action": "pause_healing",
            ACTION_CHECKBOX_NAME: [policy.pk],
            "confirm": "yes",
            "reason": "deploying",
        },
    )

    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.paused
    assert AuditEvent.objects.get(action="healing.paused").source == "admin"


def test_admin__change_form__secret_masked_and_kept_on_save(client):
    policy = _webhook_policy()
    client.force_login(make_user(superuser=True))
    url = reverse("admin:healing_healingpolicy_change", args=[policy.pk])

    page = client.get(url).content.decode()
    form = {name: getattr(policy, name) for name in ("action", "max_attempts")}
    config = {"url": "http://127.0.0.1:9/other", "secret": MASK}
    posted = client.post(
        url,
        {
            **form,
            "config": json.dumps(config),
            "backoff_seconds": 5,
            "backoff_max_seconds": 60,
            "jitter": 0.1,
            "cooldown_seconds": 0,
            "timeout_seconds": 10,
        },
    )

    assert SECRET not in page
    assert posted.status_code == 302, posted.content.decode()[-2000:]
    policy.refresh_from_db()
    assert policy.config == {"url": "http://127.0.0.1:9/other", "secret": SECRET}
    assert policy.backoff_seconds == 5


def test_cli__list_json__one_row_per_policy():
    policy = _webhook_policy()
    out = StringIO()

    call_command("healing", "list", "--format", "json", stdout=out)

    rows = json.loads(out.getvalue())
    assert [(r["component"], r["episode"]) for r in rows] == [
        (policy.component.slug, "idle")
    ]


def test_cli__heal_unknown_component__one_line_command_error():
    with pytest.raises(CommandError, match="No healing policy for 'nope'"):
        call_command("healing", "heal", "nope", "--reason", "test")
