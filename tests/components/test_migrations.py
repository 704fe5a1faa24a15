"""Data migrations of the components app keep the rows written before them valid."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.components.notifications.models import Notification
from tests.components.helpers import make_component
from tests.components.notify import make_change, make_channel

BEFORE_EVENTS = ("components", "0006_dns_tls_queue_kinds")
EVENTS = ("components", "0007_notification_events")


def _migrate(target: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_migration_0007__rows_from_before__transition_and_test_send_told_apart():
    # Given a transition's and a test send's notifications written before events
    component = make_component(slug="legacy")
    channel = make_channel(components=(component,))
    change = make_change(component)
    try:
        old = _migrate(BEFORE_EVENTS).get_model("components", "Notification")
        old.objects.create(state_change_id=change.pk, channel_id=channel.pk)
        old.objects.create(channel_id=channel.pk)

        # When the events migration runs
        _migrate(EVENTS)
    finally:
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )

    # Then each row says what it is, with the transition's component
    rows = Notification.objects.order_by("pk").values_list(
        "event", "component_id", "state_change_id"
    )
    assert list(rows) == [
        ("transition", component.pk, change.pk),
        ("test", None, None),
    ]
