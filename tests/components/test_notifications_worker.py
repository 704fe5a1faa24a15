"""Notifications through a real Celery worker: check → transition → task → webhook."""

import hashlib
import hmac
import json
import re

import pytest
from celery import current_app

from apps.components.notifications.models import Notification
from apps.components.notifications.services import DELIVER_TASK, notifications_create
from apps.components.services import component_check_now
from apps.core.models import AuditEvent
from tests.components.helpers import http_target, make_component
from tests.components.notify import (
    HOOK_SECRET,
    make_change,
    make_channel,
    make_transition_notification,
)
from tests.procs import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def receiver():
    with http_target() as server:
        yield server


def _webhook_for(receiver, component):
    return make_channel(
        config={"url": receiver.url("/hook"), "secret": HOOK_SECRET},
        components=(component,),
    )


def test_notification__target_goes_down__signed_webhook_received(
    worker, target, receiver
):
    target.status = 500
    component = make_component(
        slug="shop", config={"url": target.url("/svc")}, failure_threshold=1
    )
    _webhook_for(receiver, component)
    component_check_now(slug="shop", actor=None, source=AuditEvent.Source.SYSTEM)
    wait_until(lambda: receiver.received, timeout=30, what="the webhook")
    [request] = receiver.received
    expected = hmac.new(HOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Opsconsole-Signature"] == f"sha256={expected}"
    payload = json.loads(request.body)
    assert (payload["component"], payload["from_state"], payload["to_state"]) == (
        "shop",
        "unknown",
        "unhealthy",
    )
    sent = wait_until(
        lambda: Notification.objects.filter(status="sent").first(),
        timeout=10,
        what="the notification recorded as sent",
    )
    assert (sent.attempts, sent.response_code) == (1, 200)


def test_notification__receiver_answers_500__retried_then_sent_once(worker, receiver):
    receiver.answers["/hook"] = [500]
    component = make_component()
    _webhook_for(receiver, component)
    notifications_create(
        state_change_id=make_change(component).pk, component_id=component.pk
    )
    sent = wait_until(
        lambda: Notification.objects.filter(status="sent").first(),
        timeout=30,
        what="the retried notification to be sent",
    )
    assert [request.status for request in receiver.received] == [500, 200]
    assert (sent.attempts, sent.response_code, sent.last_error) == (2, 200, "")


def test_notification__task_delivered_twice__sent_once(worker, receiver):
    component = make_component()
    _webhook_for(receiver, component)
    notification = make_transition_notification(
        component, component.notification_channels.get()
    )
    tasks = [
        current_app.send_task(DELIVER_TASK, args=[notification.pk]) for _ in range(2)
    ]
    done = wait_until(
        lambda: _finished(worker.output(), [task.id for task in tasks]),
        timeout=30,
        what="both deliveries to finish",
    )
    assert sorted(done) == ["'sent'", "'skipped'"]
    assert len(receiver.received) == 1
    assert Notification.objects.get(pk=notification.pk).attempts == 1


def _finished(log: str, task_ids: list[str]) -> list[str] | None:
    """The return values the worker logged for ``task_ids``, once all are there."""
    values = [
        re.search(rf"{DELIVER_TASK}\[{task_id}\] succeeded in \S+: (\S+)", log)
        for task_id in task_ids
    ]
    return [match.group(1) for match in values] if all(values) else None
