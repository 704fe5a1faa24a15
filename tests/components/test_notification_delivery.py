"""Delivering notifications in-process: signatures, retries, claims, suppression."""

import hashlib
import hmac
import json

import pytest
from structlog.testing import capture_logs

from apps.components.notifications.models import Notification
from apps.components.notifications.services import (
    MAX_ATTEMPTS,
    notification_deliver,
    notifications_create,
)
from apps.core.exceptions import ValidationFailed
from apps.flags.services import flag_toggle
from apps.flags.snapshot import cache
from tests.components.helpers import http_target, make_component
from tests.components.notify import HOOK_SECRET, make_change, make_channel

pytestmark = pytest.mark.django_db
PLANTED = "Pl4nted-t0ken-xyzzy"


@pytest.fixture
def receiver():
    with http_target() as server:
        yield server


@pytest.fixture
def notification(receiver, django_capture_on_commit_callbacks):
    """A pending notification of an unhealthy transition to a webhook on ``receiver``."""
    component = make_component(slug="api")
    make_channel(
        config={"url": receiver.url("/hook"), "secret": HOOK_SECRET},
        components=(component,),
    )
    with django_capture_on_commit_callbacks(execute=False):
        [notification_id] = notifications_create(
            state_change_id=make_change(component).pk, component_id=component.pk
        )
    return Notification.objects.get(pk=notification_id)


def test_deliver__webhook__signed_json_posted_and_recorded(receiver, notification):
    attempt = notification_deliver(notification_id=notification.pk)
    [request] = receiver.received
    expected = hmac.new(HOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Opsconsole-Signature"] == f"sha256={expected}"
    payload = json.loads(request.body)
    assert (payload["component"], payload["to_state"]) == ("api", "unhealthy")
    assert attempt is not None
    assert attempt.status == "sent"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 1)
    assert notification.response_code == 200
    assert notification.sent_at is not None


def test_deliver__delivered_already__not_sent_again(receiver, notification):
    notification_deliver(notification_id=notification.pk)
    assert notification_deliver(notification_id=notification.pk) is None
    assert len(receiver.received) == 1


def test_deliver__receiver_answers_500__retrying_with_growing_backoff(
    receiver, notification
):
    receiver.status = 500
    first = notification_deliver(notification_id=notification.pk)
    second = notification_deliver(notification_id=notification.pk)
    assert (first.status, first.retry_in) == ("retrying", 2)
    assert (second.status, second.retry_in) == ("retrying", 4)
    notification.refresh_from_db()
    assert (notification.attempts, notification.response_code) == (2, 500)
    assert "HTTP 500" in notification.last_error


def test_deliver__receiver_keeps_failing__failed_after_max_attempts(
    receiver, notification
):
    receiver.status = 503
    attempts = [notification_deliver(notification_id=notification.pk)]
    while attempts[-1] is not None and attempts[-1].retry_in is not None:
        attempts.append(notification_deliver(notification_id=notification.pk))
    assert len(receiver.received) == MAX_ATTEMPTS
    assert attempts[-1].status == "failed"
    assert notification_deliver(notification_id=notification.pk) is None


def test_deliver__receiver_answers_404__failed_without_retry(receiver, notification):
    receiver.status = 404
    attempt = notification_deliver(notification_id=notification.pk)
    assert (attempt.status, attempt.retry_in) == ("failed", None)
    assert notification_deliver(notification_id=notification.pk) is None


def test_deliver__claim_held_by_another_worker__nothing_sent(receiver, notification):
    Notification.objects.filter(pk=notification.pk).update(
        claimed_until=notification.created_at.replace(year=2999)
    )
    assert notification_deliver(notification_id=notification.pk) is None
    assert receiver.received == []


@pytest.fixture
def notifications_off():
    def toggle(enabled: bool) -> None:
        flag_toggle(
            key="opsconsole.notifications.enabled",
            enabled=enabled,
            actor=None,
            reason="test",
            source="system",
        )
        cache.reload()

    toggle(False)
    yield
    toggle(True)


def test_deliver__notifications_switched_off__suppressed_not_sent(
    receiver, notification, notifications_off
):
    attempt = notification_deliver(notification_id=notification.pk)
    assert attempt is not None
    assert attempt.status == "suppressed"
    assert receiver.received == []
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("suppressed", 0)


def test_deliver__slack_channel__text_posted(
    receiver, django_capture_on_commit_callbacks
):
    component = make_component(slug="db")
    make_channel(
        kind="slack", config={"url": receiver.url("/slack")}, components=(component,)
    )
    with django_capture_on_commit_callbacks(execute=False):
        [pk] = notifications_create(
            state_change_id=make_change(component).pk, component_id=component.pk
        )
    notification_deliver(notification_id=pk)
    [request] = receiver.received
    assert json.loads(request.body) == {"text": "db: healthy → unhealthy (HTTP 500)"}


def test_deliver__email_channel__mail_sent(
    mailoutbox, django_capture_on_commit_callbacks
):
    component = make_component(slug="queue")
    make_channel(
        kind="email", config={"to": ["ops@example.com"]}, components=(component,)
    )
    with django_capture_on_commit_callbacks(execute=False):
        [pk] = notifications_create(
            state_change_id=make_change(component).pk, component_id=component.pk
        )
    attempt = notification_deliver(notification_id=pk)
    assert attempt.status == "sent"
    [mail] = mailoutbox
    assert mail.to == ["ops@example.com"]
    assert mail.subject == "opsconsole: queue: healthy → unhealthy"


def test_deliver__unreachable_url_with_token__token_not_in_error_or_logs(
    django_capture_on_commit_callbacks,
):
    component = make_component()
    make_channel(
        kind="slack",
        config={"url": f"http://127.0.0.1:1/services/{PLANTED}"},
        components=(component,),
    )
    with django_capture_on_commit_callbacks(execute=False):
        [pk] = notifications_create(
            state_change_id=make_change(component).pk, component_id=component.pk
        )
    with capture_logs() as logs:
        attempt = notification_deliver(notification_id=pk)
    assert attempt.status == "retrying"
    notification = Notification.objects.get(pk=pk)
    assert notification.last_error
    assert PLANTED not in notification.last_error
    assert logs
    assert PLANTED not in repr(logs)


def test_notifications_create__disabled_and_other_channels__only_enabled_own(
    django_capture_on_commit_callbacks,
):
    component, other = make_component(), make_component()
    mine = make_channel(components=(component,))
    make_channel(components=(component,), enabled=False)
    make_channel(components=(other,))
    change = make_change(component)
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        ids = notifications_create(state_change_id=change.pk, component_id=component.pk)
        again = notifications_create(
            state_change_id=change.pk, component_id=component.pk
        )
    assert ids == again
    assert list(Notification.objects.values_list("channel", flat=True)) == [mine.pk]
    assert len(enqueued) == 2


@pytest.mark.parametrize(
    ("kind", "config", "field"),
    [
        ("webhook", {"url": "http://x.example/h", "secret": "short"}, "secret"),
        ("webhook", {"url": "ftp://x.example/h", "secret": HOOK_SECRET}, "url"),
        ("email", {"to": ["not-an-address"]}, "to"),
        ("slack", {"url": "http://x.example/h", "extra": 1}, "extra"),
    ],
)
def test_channel_create__bad_config__validation_failed(kind, config, field):
    with pytest.raises(ValidationFailed) as failed:
        make_channel(kind=kind, config=config)
    assert any(
        message.startswith(field) for message in failed.value.extra["fields"]["config"]
    )
