"""Notifications at the doors: listener (maintenance), admin, REST; secrets stay in."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.components.notifications.models import Notification, NotificationChannel
from apps.components.notifications.services import notification_deliver
from apps.components.services import (
    component_check_now,
    components_run_batch,
    maintenance_window_create,
)
from apps.core.models import AuditEvent
from tests.components.helpers import make_component
from tests.components.notify import (
    HOOK_SECRET,
    make_channel,
    make_transition_notification,
)
from tests.factories import bearer, make_token, make_user

pytestmark = pytest.mark.django_db
PLANTED = "Pl4nted-h00k-secret-xyzzy"
CHANNELS_URL = reverse("admin:components_notificationchannel_changelist")
COMPONENTS_URL = reverse("admin:components_component_changelist")


def _check(component, capture) -> None:
    with capture(execute=False):
        claimed = component_check_now(
            slug=component.slug, actor=None, source=AuditEvent.Source.SYSTEM
        )
    with capture(execute=False) as after_commit:
        components_run_batch(
            component_ids=[component.pk], claim_token=claimed.claim_token
        )
    # Run the recording's hooks (listeners) but not the deliveries they enqueue.
    with capture(execute=False):
        for callback in after_commit:
            callback()


@pytest.mark.parametrize(("maintenance", "expected"), [(False, 1), (True, 0)])
def test_listener__goes_unhealthy__notified_unless_in_maintenance(
    target, django_capture_on_commit_callbacks, maintenance, expected
):
    component = make_component(config={"url": target.url("/m")}, failure_threshold=1)
    make_channel(components=(component,))
    if maintenance:
        maintenance_window_create(
            component=component,
            starts_at=timezone.now() - timedelta(minutes=1),
            ends_at=timezone.now() + timedelta(hours=1),
            actor=None,
            source=AuditEvent.Source.SYSTEM,
        )
    target.status = 500
    _check(component, django_capture_on_commit_callbacks)
    assert component.state_changes.filter(to_state="unhealthy").count() == 1
    assert Notification.objects.count() == expected


@pytest.fixture
def planted(django_capture_on_commit_callbacks):
    """A webhook channel whose URL and HMAC secret hold PLANTED, with a delivery."""
    component = make_component(slug="payments")
    channel = make_channel(
        config={"url": f"http://127.0.0.1:1/hook/{PLANTED}", "secret": PLANTED},
        components=(component,),
    )
    make_transition_notification(component, channel)
    for notification in Notification.objects.all():
        notification_deliver(notification_id=notification.pk)
    return channel


def test_secret__admin_pages__never_shown(client, planted):
    client.force_login(make_user(superuser=True))
    urls = [
        CHANNELS_URL,
        reverse("admin:components_notificationchannel_change", args=[planted.pk]),
        reverse("admin:components_notificationchannel_history", args=[planted.pk]),
        reverse("admin:components_notification_changelist"),
        reverse("admin:core_auditevent_changelist"),
    ]
    urls += [
        reverse("admin:components_notification_change", args=[pk])
        for pk in Notification.objects.values_list("pk", flat=True)
    ]
    urls += [
        reverse("admin:core_auditevent_change", args=[pk])
        for pk in AuditEvent.objects.values_list("pk", flat=True)
    ]
    pages = {url: client.get(url) for url in urls}
    assert {url: page.status_code for url, page in pages.items()} == dict.fromkeys(
        urls, 200
    )
    assert "127.0.0.1/********" in pages[urls[1]].content.decode()
    leaked = [url for url, page in pages.items() if PLANTED in page.content.decode()]
    assert leaked == []


def test_secret__api__never_shown(client, planted):
    headers = bearer(make_token(scopes=("read",))[1])
    urls = [
        "/api/v1/components/notifications/channels",
        "/api/v1/components/notifications/deliveries",
        "/api/v1/audit",
    ]
    bodies = {url: client.get(url, headers=headers) for url in urls}
    assert {url: body.status_code for url, body in bodies.items()} == dict.fromkeys(
        urls, 200
    )
    [channel] = bodies[urls[0]].json()["items"]
    assert channel["config"]["secret"] == "********"
    assert channel["components"] == ["payments"]
    [delivery] = bodies[urls[1]].json()["items"]
    assert (delivery["component"], delivery["status"]) == ("payments", "retrying")
    leaked = [url for url, body in bodies.items() if PLANTED in body.content.decode()]
    assert leaked == []


def test_admin_change__secrets_left_masked__stored_secrets_kept(client, planted):
    client.force_login(make_user(superuser=True))
    url = reverse("admin:components_notificationchannel_change", args=[planted.pk])
    form = {
        "name": "renamed",
        "kind": "webhook",
        "config": '{"url": "http://127.0.0.1/********", "secret": "********"}',
        "enabled": "on",
        "components": [str(c.pk) for c in planted.components.all()],
    }
    response = client.post(url, form)
    assert response.status_code == 302
    planted.refresh_from_db()
    assert planted.name == "renamed"
    assert planted.config["secret"] == PLANTED
    assert PLANTED in planted.config["url"]
    assert AuditEvent.objects.filter(action="notification_channel.changed").exists()


def test_admin_add__bad_config__form_error_not_500(client):
    client.force_login(make_user(superuser=True))
    form = {"name": "x", "kind": "webhook", "config": '{"url": "http://h/x"}'}
    response = client.post(reverse("admin:components_notificationchannel_add"), form)
    assert response.status_code == 200
    assert "secret: Field required" in response.content.decode()
    assert not NotificationChannel.objects.exists()


def test_admin_action_send_test__operator__queued_and_delivered(
    client, django_capture_on_commit_callbacks, target
):
    channel = make_channel(kind="slack", config={"url": target.url("/slack")})
    client.force_login(make_user(role="operator"))
    chosen = {"action": "send_test", "_selected_action": [channel.pk]}
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(CHANNELS_URL, chosen, follow=True)
    assert "Queued 1 test notification" in response.content.decode()
    [test_send] = Notification.objects.filter(state_change=None)
    notification_deliver(notification_id=test_send.pk)
    assert [r.path for r in target.received] == ["/slack"]


def test_admin_action_send_test__viewer__not_offered(client):
    make_channel()
    client.force_login(make_user(role="viewer"))
    page = client.get(CHANNELS_URL)
    assert page.status_code == 200
    assert "send_test" not in page.content.decode()


def test_component_action_send_test__shared_channel__one_test_send_per_channel(
    client, django_capture_on_commit_callbacks, target
):
    first, second, third = (make_component() for _ in range(3))
    make_channel(
        kind="slack", config={"url": target.url("/shared")}, components=(first, second)
    )
    make_channel(kind="slack", config={"url": target.url("/own")}, components=(third,))
    make_channel(components=(first,), enabled=False)
    client.force_login(make_user(role="operator"))
    chosen = {
        "action": "send_test_notification",
        "_selected_action": [first.pk, second.pk, third.pk],
    }
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(COMPONENTS_URL, chosen, follow=True)
    assert "through 2 channel(s)" in response.content.decode()
    for test_send in Notification.objects.filter(event="test"):
        notification_deliver(notification_id=test_send.pk)
    assert sorted(r.path for r in target.received) == ["/own", "/shared"]


def test_component_action_send_test__no_channel__warned_and_nothing_queued(client):
    component = make_component()
    client.force_login(make_user(role="operator"))
    chosen = {"action": "send_test_notification", "_selected_action": [component.pk]}
    response = client.post(COMPONENTS_URL, chosen, follow=True)
    assert "None of them has an enabled channel." in response.content.decode()
    assert not Notification.objects.exists()


def test_component_action_send_test__viewer__not_offered(client):
    make_component()
    client.force_login(make_user(role="viewer"))
    page = client.get(COMPONENTS_URL)
    assert page.status_code == 200
    assert "send_test_notification" not in page.content.decode()


def test_api_test_send__write_token__202_and_queued(
    client, django_capture_on_commit_callbacks
):
    channel = make_channel()
    token = make_token(user=make_user(role="operator"), scopes=("read", "write"))[1]
    url = f"/api/v1/components/notifications/channels/{channel.pk}/test"
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, headers=bearer(token))
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert Notification.objects.filter(channel=channel, state_change=None).count() == 1


def test_api_test_send__read_token__403(client):
    channel = make_channel()
    token = make_token(scopes=("read",))[1]
    url = f"/api/v1/components/notifications/channels/{channel.pk}/test"
    assert client.post(url, headers=bearer(token)).status_code == 403
    assert not Notification.objects.exists()


def test_api_deliveries__component_filter__only_that_component(client):
    first, second = make_component(slug="first"), make_component(slug="second")
    channel = make_channel(components=(first, second))
    for component in (first, second):
        make_transition_notification(component, channel)
    headers = bearer(make_token(scopes=("read",))[1])
    body = client.get(
        "/api/v1/components/notifications/deliveries?component=second", headers=headers
    ).json()
    assert [item["component"] for item in body["items"]] == ["second"]
    assert body["items"][0]["channel"] == channel.name
    assert HOOK_SECRET not in str(body)
