"""Registry services and selectors: validation, secrets, check now, pruning."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.components.models import HealthResult
from apps.components.selectors import MASK, component_config_public
from apps.components.services import (
    component_check_now,
    components_ensure_self,
    maintenance_window_create,
    results_prune,
)
from apps.core.exceptions import Conflict, ValidationFailed
from apps.core.models import AuditEvent
from tests.components.helpers import make_component

pytestmark = pytest.mark.django_db
PLANTED = "s3cr3t-planted-value"


def test_component_create__config_invalid_for_kind__validation_failed():
    with pytest.raises(ValidationFailed) as caught:
        make_component(kind="tcp", config={"host": "x", "port": 70000})
    assert list(caught.value.fields) == ["config.port"]


def test_config_public__secret_fields__masked():
    dsn = f"postgresql://app:{PLANTED}@db/app"
    postgres = make_component(kind="postgres", config={"dsn": dsn, "query": "SELECT 1"})
    http = make_component(config={"url": "http://x/", "headers": {"X-Token": PLANTED}})
    redis = make_component(kind="redis", config={"url": f"redis://:{PLANTED}@r/0"})
    basic = make_component(config={"url": f"https://probe:{PLANTED}@x/health"})
    components = (postgres, http, redis, basic)
    shown = [component_config_public(component=c) for c in components]
    assert PLANTED not in repr(shown)
    assert shown[0] == {"dsn": MASK, "query": "SELECT 1"}
    assert shown[1]["headers"] == MASK
    assert shown[3]["url"] == f"https://probe:{MASK}@x/health"


def test_component_create__secret_config__not_in_audit():
    make_component(kind="postgres", config={"dsn": f"postgresql://u:{PLANTED}@h/d"})
    event = AuditEvent.objects.get(action="component.created")
    assert PLANTED not in repr(event.after)


def test_check_now__already_claimed__conflict(django_capture_on_commit_callbacks):
    component = make_component()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        component_check_now(
            slug=component.slug, actor=None, source=AuditEvent.Source.SYSTEM
        )
    # Other on-commit work (live audit feed) may ride along; one batch is enqueued.
    enqueued = [c for c in callbacks if "_enqueue_on_commit" in c.__qualname__]
    assert len(enqueued) == 1
    with pytest.raises(Conflict):
        component_check_now(
            slug=component.slug, actor=None, source=AuditEvent.Source.SYSTEM
        )


def test_results_prune__old_and_new__only_old_deleted_in_batches():
    component = make_component()
    now = timezone.now()
    HealthResult.objects.bulk_create(
        HealthResult(
            component=component,
            status="healthy",
            latency_ms=1,
            checked_at=now - timedelta(days=age),
        )
        for age in [40] * 7 + [1] * 2
    )
    deleted = results_prune(older_than=now - timedelta(days=35), batch_size=3)
    assert deleted == 7
    assert HealthResult.objects.count() == 2


def test_ensure_self__twice__four_components_no_secrets():
    first = components_ensure_self()
    second = components_ensure_self()
    assert [c.pk for c in first] == [c.pk for c in second]
    kinds = {c.kind for c in first}
    assert kinds == {"postgres", "redis", "celery_workers", "heartbeat"}
    assert all("dsn" not in c.config and "url" not in c.config for c in first)


def test_maintenance_window__bad_cron__validation_failed():
    component = make_component()
    with pytest.raises(ValidationFailed) as caught:
        maintenance_window_create(
            component=component,
            starts_at=timezone.now(),
            ends_at=None,
            cron="not a cron",
            duration=timedelta(minutes=5),
            actor=None,
            source=AuditEvent.Source.SYSTEM,
        )
    assert "cron" in caught.value.fields


def test_maintenance_window__recurring_daily__open_only_inside_duration():
    component = make_component()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    window = maintenance_window_create(
        component=component,
        starts_at=start,
        ends_at=None,
        cron="0 3 * * *",
        duration=timedelta(minutes=30),
        tz="Europe/Paris",
        actor=None,
        source=AuditEvent.Source.SYSTEM,
    )
    # 03:00 in Paris in winter is 02:00 UTC.
    at = datetime(2026, 2, 10, 2, 0, tzinfo=UTC)
    assert window.is_open(at)
    assert window.is_open(at + timedelta(minutes=29))
    assert not window.is_open(at + timedelta(minutes=30))
    assert not window.is_open(at - timedelta(seconds=1))


def test_maintenance_window__back_to_back_windows__open_in_the_second_before_a_start():
    component = make_component()
    window = maintenance_window_create(
        component=component,
        starts_at=datetime(2026, 1, 1, tzinfo=UTC),
        ends_at=None,
        cron="* * * * *",
        duration=timedelta(minutes=1),
        actor=None,
        source=AuditEvent.Source.SYSTEM,
    )
    fire = datetime(2026, 2, 10, 12, 1, tzinfo=UTC)
    # Each minute's window ends as the next opens: never a gap, even in the last
    # second before a start (a window then still covers it).
    for at in (
        fire - timedelta(milliseconds=500),
        fire - timedelta(microseconds=1),
        fire,
        fire + timedelta(milliseconds=500),
    ):
        assert window.is_open(at), at
