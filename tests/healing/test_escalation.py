"""Escalation through the component's notification channels, delivered by a real
worker to a local webhook receiver."""

import hashlib
import hmac
import json

import pytest
from django.utils import timezone

from apps.components.notifications.models import Notification
from apps.components.notifications.services import DELIVER_TASK
from apps.healing.models import Episode, HealingPolicy
from apps.healing.services import healing_request
from apps.healing.services.escalation import escalation_notify
from opsconsole.celery import app
from tests.components.helpers import http_target, make_component
from tests.components.notify import make_channel
from tests.healing.helpers import SECRET, make_policy, set_unhealthy
from tests.procs import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
SECRETS = {"/ops": "ops-secret-0123456789", "/oncall": "oncall-secret-0123456789"}


def _escalated(receiver, worker) -> HealingPolicy:
    """A failing component with two webhook channels on ``receiver``, healed by a
    webhook that always answers 500 and escalated by the worker; its policy once
    both escalations are sent."""
    component = make_component(slug="billing")
    for path, secret in SECRETS.items():
        config = {"url": receiver.url(path), "secret": secret}
        make_channel(config=config, components=(component,))
    receiver.answers["/heal"] = [500] * 10
    policy = make_policy(
        component,
        action="webhook",
        config={"url": receiver.url("/heal"), "secret": SECRET},
        max_attempts=1,
        backoff_seconds=0.2,
        timeout_seconds=2,
    )
    set_unhealthy(component, timezone.now())
    assert healing_request(component_id=component.pk, reason="down", now=timezone.now())
    wait_until(
        lambda: _sent_escalations() == 2,
        timeout=60,
        what=f"both escalations sent; log:\n{worker.output()[-3000:]}",
    )
    return policy


def _sent_escalations() -> int:
    return Notification.objects.filter(event="escalation", status="sent").count()


def _escalations(receiver) -> list:
    return [
        request
        for request in receiver.received
        if request.path in SECRETS
        and json.loads(request.body)["event"] == "component.escalation"
    ]


def test_escalation__attempts_exhausted__one_signed_webhook_per_channel(worker):
    with http_target() as receiver:
        policy = _escalated(receiver, worker)
        requests = _escalations(receiver)
        heals = receiver.hits["/heal"]

    policy.refresh_from_db()
    assert (policy.episode, heals) == (Episode.NEEDS_HUMAN, 1)
    assert sorted(request.path for request in requests) == ["/oncall", "/ops"]
    for request in requests:
        digest = hmac.new(
            SECRETS[request.path].encode(), request.body, hashlib.sha256
        ).hexdigest()
        assert request.headers["X-Opsconsole-Signature"] == f"sha256={digest}"
        payload = json.loads(request.body)
        assert payload["component"] == "billing"
        assert payload["subject"] == "billing needs a human: healing gave up"


def test_escalation__task_redelivered_and_escalated_again__sent_once(worker):
    with http_target() as receiver:
        policy = _escalated(receiver, worker)

        again = escalation_notify(policy=HealingPolicy.objects.get(pk=policy.pk))
        redelivered = [
            app.send_task(DELIVER_TASK, args=[pk], ignore_result=False).get(timeout=30)
            for pk in Notification.objects.values_list("pk", flat=True)
        ]
        requests = _escalations(receiver)

    assert again == []
    assert redelivered == ["skipped", "skipped"]
    assert len(requests) == 2
    assert list(Notification.objects.values_list("attempts", flat=True)) == [1, 1]
