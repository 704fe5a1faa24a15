"""Notifying a component's channels of an event that is not a state change."""

import json

import pytest

from apps.components.notifications.models import Notification, NotificationEvent
from apps.components.notifications.services import (
    notification_deliver,
    notify_component,
)
from tests.components.helpers import http_target, make_component
from tests.components.notify import make_channel
from tests.factories import bearer, make_token

pytestmark = pytest.mark.django_db


def _escalate(component, key: str = "escalation:7:42") -> list[int]:
    return notify_component(
        component=component,
        event=NotificationEvent.ESCALATION,
        subject="db needs a human",
        text="3 attempts did not bring db back.",
        dedup_key=key,
    )


def test_notify_component__same_key_twice__one_per_enabled_channel(
    django_capture_on_commit_callbacks,
):
    component = make_component(slug="db")
    channels = [make_channel(components=(component,)) for _ in range(2)]
    make_channel(components=(component,), enabled=False)
    make_channel()  # another component's

    with django_capture_on_commit_callbacks() as enqueued:
        first = _escalate(component)
        second = _escalate(component)

    rows = Notification.objects.filter(pk__in=first)
    assert sorted(row.channel_id for row in rows) == [c.pk for c in channels]
    assert sorted(second) == sorted(first)
    assert Notification.objects.count() == 2
    assert {row.event for row in rows} == {"escalation"}
    assert len(enqueued) == 4  # pending ones are enqueued again; the claim sends once


def test_notify_component__new_key__notified_again(django_capture_on_commit_callbacks):
    component = make_component()
    make_channel(components=(component,))

    with django_capture_on_commit_callbacks():
        _escalate(component, key="escalation:1:1")
        _escalate(component, key="escalation:1:2")

    assert Notification.objects.count() == 2


def test_notify_component__slack_channel__subject_and_text_sent(
    django_capture_on_commit_callbacks,
):
    component = make_component(slug="db")
    with http_target() as receiver:
        make_channel(
            kind="slack",
            config={"url": receiver.url("/slack")},
            components=(component,),
        )
        with django_capture_on_commit_callbacks(execute=False):
            [pk] = _escalate(component)
        attempt = notification_deliver(notification_id=pk)
        [request] = receiver.received

    assert attempt is not None
    assert attempt.status == "sent"
    assert json.loads(request.body) == {"text": "3 attempts did not bring db back."}


def test_notify_component__transition_event__refused():
    component = make_component()
    make_channel(components=(component,))

    with pytest.raises(ValueError, match="transition"):
        notify_component(
            component=component,
            event=NotificationEvent.TRANSITION,
            subject="s",
            text="t",
            dedup_key="k",
        )

    assert not Notification.objects.exists()


def test_api_deliveries__escalation__listed_with_component_and_event(
    client, django_capture_on_commit_callbacks
):
    component = make_component(slug="db")
    make_channel(components=(component,))
    with django_capture_on_commit_callbacks(execute=False):
        _escalate(component)
    headers = bearer(make_token(scopes=("read",))[1])

    body = client.get(
        "/api/v1/components/notifications/deliveries?component=db", headers=headers
    ).json()

    [item] = body["items"]
    assert (item["component"], item["event"], item["subject"]) == (
        "db",
        "escalation",
        "db needs a human",
    )
    assert item["to_state"] is None
