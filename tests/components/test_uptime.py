"""The 24 h uptime kept on the state rows: the refresh, its window, the API's view."""

import threading
from datetime import UTC, timedelta

import pytest
from django.db import connection, transaction
from django.db.models import F, FloatField, Func, JSONField, OuterRef, Subquery, Value
from django.db.models.functions import Cast
from django.utils import timezone

from apps.components.models import Component, ComponentState, HealthResult
from apps.components.selectors import CHECK_UP_METRIC, component_list
from apps.components.services import component_uptimes_refresh
from apps.components.tasks import refresh_uptimes
from apps.metrics.models import Resolution, Rollup
from opsconsole.celery import BEAT_SCHEDULE
from tests.components.helpers import checks_rolled, make_component, samples_forgotten
from tests.factories import bearer, make_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader():
    return bearer(make_token(scopes=("read",))[1])


def _hour(now):
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _subquery_uptimes(now):
    """Each component's uptime as the list computed it before it was kept: a
    correlated subquery over its hour rollups (the reference)."""
    hour = _hour(now)
    tags = Func(
        Value("component"),
        OuterRef("slug"),
        function="jsonb_build_object",
        output_field=JSONField(),
    )
    total = Func(F("sum"), function="SUM", output_field=FloatField())
    count = Func(Cast("count", FloatField()), function="SUM", output_field=FloatField())
    ratio = (
        Rollup.objects.filter(
            resolution=Resolution.HOUR,
            series__name=CHECK_UP_METRIC,
            series__tags=tags,
            bucket_start__gte=hour - timedelta(hours=24),
            bucket_start__lt=hour,
        )
        .annotate(pct=total * 100.0 / count)
        .values("pct")
    )
    rows = Component.objects.annotate(
        pct=Subquery(ratio, output_field=FloatField())
    ).values_list("slug", "pct")
    return dict(rows)


def _checks(component, *, hours_ago, statuses, now):
    """``statuses`` as checks ``hours_ago`` hours before ``now``, rolled up."""
    at = now - timedelta(hours=hours_ago)
    made = HealthResult.objects.bulk_create(
        HealthResult(component=component, status=s, latency_ms=5, checked_at=at)
        for s in statuses
    )
    checks_rolled(made)
    return made


def _kept():
    rows = ComponentState.objects.values_list(
        "component__slug", "uptime_24h_pct", "uptime_24h_until"
    )
    return {slug: (pct, until) for slug, pct, until in rows}


def test_refresh__varied_histories__same_figures_as_the_rollup_subquery():
    # Given a component up in every hour of the day, one with checks in three
    # hours only, one down in the current (open) hour and a day ago, one unchecked
    now = timezone.now()
    steady, partial = make_component(slug="steady"), make_component(slug="partial")
    edges = make_component(slug="edges")
    make_component(slug="unchecked")
    for hours_ago in range(1, 25):
        _checks(steady, hours_ago=hours_ago, statuses=["healthy"] * 3, now=now)
    _checks(steady, hours_ago=5, statuses=["unhealthy"], now=now)
    for hours_ago, statuses in ((2, ["healthy", "unhealthy"]), (7, ["degraded"])):
        _checks(partial, hours_ago=hours_ago, statuses=statuses, now=now)
    _checks(partial, hours_ago=13, statuses=["unhealthy"] * 3, now=now)
    _checks(edges, hours_ago=0, statuses=["unhealthy"] * 4, now=now)
    _checks(edges, hours_ago=26, statuses=["unhealthy"] * 4, now=now)
    _checks(edges, hours_ago=3, statuses=["healthy", "unhealthy"], now=now)
    # When the uptimes are refreshed
    written = component_uptimes_refresh(now=now)
    # Then each state row holds what the subquery computes, None without rollups
    kept, reference = _kept(), _subquery_uptimes(now)
    assert written == 4
    assert {slug: pct for slug, (pct, _) in kept.items()} == pytest.approx(reference)
    assert reference["partial"] == pytest.approx(2 * 100 / 6)
    assert reference["edges"] == 50.0
    assert reference["unchecked"] is None
    assert {until for _, until in kept.values()} == {_hour(now)}


def test_refresh__new_rollups__figure_changes_only_after_the_refresh():
    # Given a component all up, refreshed
    now = timezone.now()
    component = make_component(slug="changing")
    _checks(component, hours_ago=2, statuses=["healthy"] * 3, now=now)
    component_uptimes_refresh(now=now)
    # When a closed hour gains a failure and its rollup is rolled again
    _checks(component, hours_ago=2, statuses=["unhealthy"], now=now)
    before = component_list().get(slug="changing").uptime_pct
    written = component_uptimes_refresh(now=now)
    # Then the list shows the new figure from the refresh on
    assert before == 100.0
    assert written == 1
    assert component_list().get(slug="changing").uptime_pct == 75.0


def test_refresh__nothing_changed__writes_no_row_until_the_hour_turns():
    now = timezone.now()
    component = make_component(slug="still")
    make_component(slug="silent")
    _checks(component, hours_ago=1, statuses=["healthy"], now=now)
    assert component_uptimes_refresh(now=now) == 2
    assert component_uptimes_refresh(now=now) == 0
    next_hour = _hour(now) + timedelta(hours=1, minutes=1)
    assert component_uptimes_refresh(now=next_hour) == 2
    assert _kept()["still"] == (100.0, _hour(next_hour))


def test_refresh__hour_turns__window_moves_with_it():
    # Given a failure 23 h before the current hour's start, and checks up since
    now = timezone.now()
    component = make_component(slug="moving")
    _checks(component, hours_ago=24, statuses=["unhealthy"], now=now)
    _checks(component, hours_ago=2, statuses=["healthy"], now=now)
    component_uptimes_refresh(now=now)
    first = _kept()["moving"][0]
    # When the hour turns and the refresh runs
    component_uptimes_refresh(now=now + timedelta(hours=1))
    # Then the failure's hour has left the window
    assert (first, _kept()["moving"][0]) == (50.0, 100.0)


def test_api__list_and_detail__the_kept_uptime_and_its_window(client, reader):
    now = timezone.now()
    component = make_component(slug="api-up")
    make_component(slug="api-none")
    _checks(component, hours_ago=1, statuses=["healthy", "unhealthy"], now=now)
    component_uptimes_refresh(now=now)
    listed = client.get("/api/v1/components", headers=reader).json()["items"]
    detail = client.get("/api/v1/components/api-up", headers=reader).json()
    by_slug = {row["slug"]: row for row in listed}
    until = _hour(now).isoformat().replace("+00:00", "Z")
    assert (detail["uptime_24h_pct"], by_slug["api-up"]["uptime_24h_pct"]) == (50, 50)
    assert detail["uptime_24h_until"] == by_slug["api-up"]["uptime_24h_until"] == until
    assert by_slug["api-none"]["uptime_24h_pct"] is None


def test_beat__scheduled_task__run__stores_the_uptimes():
    # Given a component with checks in the last closed hour
    component = make_component(slug="beaten")
    _checks(component, hours_ago=1, statuses=["healthy"], now=timezone.now())
    entry = BEAT_SCHEDULE["components.uptimes_refresh"]
    # When the task beat schedules every minute runs
    written = refresh_uptimes.apply().get()
    # Then it stored the figure
    assert (entry["task"], entry["schedule"]) == (refresh_uptimes.name, 60.0)
    assert (written, _kept()["beaten"][0]) == (1, 100.0)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_refresh__state_row_held_by_a_writer__skipped_then_written_next_time():
    # Given two checked components, one's state row locked by another transaction
    now = timezone.now()
    held, free = make_component(slug="held"), make_component(slug="free")
    with samples_forgotten():
        _checks(held, hours_ago=1, statuses=["healthy"], now=now)
        _checks(free, hours_ago=1, statuses=["unhealthy"], now=now)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                ComponentState.objects.select_for_update().get(component=held)
                locked.set()
                # Bounded: a refresh that waited would get the row and fail below.
                release.wait(timeout=10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        # When the uptimes are refreshed meanwhile, then after the writer is done
        during = component_uptimes_refresh(now=now)
        kept_during = _kept()
    finally:
        release.set()
        holder.join(timeout=10)
    after = component_uptimes_refresh(now=now)
    # Then the held row was skipped without waiting, and written the next time
    assert (during, kept_during["held"], kept_during["free"][0]) == (1, (None, None), 0)
    assert (after, _kept()["held"][0]) == (1, 100.0)
