"""Console-wide maintenance (the switch opsconsole.maintenance) holds alerts back;
an operator's test-send still goes (issue #4 item 12)."""

import pytest

from apps.components.notifications.models import Notification
from apps.components.notifications.services import (
    notification_deliver,
    notification_test_send,
    notifications_create,
)
from apps.core.models import AuditEvent
from apps.flags.services import flag_toggle
from apps.flags.snapshot import cache
from tests.components.helpers import http_target, make_component
from tests.components.notify import HOOK_SECRET, make_change, make_channel

pytestmark = pytest.mark.django_db


def _toggle(key: str, enabled: bool) -> None:
    flag_toggle(
        key=key,
        enabled=enabled,
        actor=None,
        reason="test",
        source=AuditEvent.Source.SYSTEM,
    )
    cache.reload()


@pytest.fixture
def console_in_maintenance():
    # Maintenance conflicts with healing: the flag rules want healing off first.
    _toggle("opsconsole.healing.enabled", False)
    _toggle("opsconsole.maintenance", True)
    yield
    _toggle("opsconsole.maintenance", False)
    _toggle("opsconsole.healing.enabled", True)


def test_deliver__console_in_maintenance__alert_suppressed_test_send_goes(
    console_in_maintenance, django_capture_on_commit_callbacks
):
    with http_target() as receiver:
        component = make_component(slug="billing")
        channel = make_channel(
            config={"url": receiver.url("/hook"), "secret": HOOK_SECRET},
            components=(component,),
        )
        with django_capture_on_commit_callbacks(execute=False):
            [alert_id] = notifications_create(
                state_change_id=make_change(component).pk,
                component_id=component.pk,
            )
            test_send = notification_test_send(
                channel_id=channel.pk, actor=None, source=AuditEvent.Source.SYSTEM
            )

        alert = notification_deliver(notification_id=alert_id)
        sent = notification_deliver(notification_id=test_send.pk)

        assert alert is not None
        assert alert.status == "suppressed"
        assert sent is not None
        assert sent.status == "sent"
        assert len(receiver.received) == 1
    assert Notification.objects.get(pk=alert_id).status == "suppressed"
