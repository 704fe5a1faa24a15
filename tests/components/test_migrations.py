"""Data migrations of the components app keep the rows written before them valid."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.components.models import ComponentState, HealthResult
from apps.components.notifications.models import Notification
from tests.components.helpers import checks_rolled, make_component, samples_forgotten
from tests.components.notify import make_change, make_channel

BEFORE_EVENTS = ("components", "0006_dns_tls_queue_kinds")
EVENTS = ("components", "0007_notification_events")
BEFORE_UPTIME = ("components", "0008_healthresult_no_single_component_index")
UPTIME = ("components", "0009_state_uptime_24h")


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


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_migration_0009__rolled_checks_from_before__uptime_filled_at_migrate():
    # Given a component with checks rolled up, one without, before the column
    checked, unchecked = make_component(slug="kept-up"), make_component(slug="none")
    an_hour_ago = timezone.now() - timedelta(hours=1)
    with samples_forgotten():
        checks_rolled(
            HealthResult.objects.bulk_create(
                HealthResult(
                    component=checked, status=s, latency_ms=5, checked_at=an_hour_ago
                )
                for s in ("healthy", "healthy", "healthy", "unhealthy")
            )
        )
        try:
            _migrate(BEFORE_UPTIME)
            # When the uptime migration runs
            migrating = timezone.now()
            _migrate(UPTIME)
        finally:
            MigrationExecutor(connection).migrate(
                MigrationExecutor(connection).loader.graph.leaf_nodes()
            )
    # Then the lists have each figure from the deploy on, before any refresh
    kept = dict(ComponentState.objects.values_list("component_id", "uptime_24h_pct"))
    until = set(ComponentState.objects.values_list("uptime_24h_until", flat=True))
    assert kept == {checked.pk: 75.0, unchecked.pk: None}
    assert until <= {_hour(migrating), _hour(timezone.now())}
    assert len(until) == 1


def _hour(at):
    return at.replace(minute=0, second=0, microsecond=0)
