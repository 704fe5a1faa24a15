"""Statistics: uptime, latency percentiles per period, incidents with durations."""

import math
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.components.models import HealthResult, StateChange
from apps.components.stats import component_stats, incidents_recent
from apps.metrics.sketch import RELATIVE_ACCURACY
from tests.components.helpers import checks_rolled, make_component
from tests.factories import bearer, make_token, make_user

pytestmark = pytest.mark.django_db


def _lower_quantile(values: list[float], fraction: float) -> float:
    """The rank the rollups' sketch estimates (within RELATIVE_ACCURACY)."""
    ordered = sorted(values)
    return ordered[math.floor(fraction * (len(ordered) - 1))]


def _results(component, now, *, ago, latencies, unhealthy=0):
    return HealthResult.objects.bulk_create(
        HealthResult(
            component=component,
            status="unhealthy" if n < unhealthy else "healthy",
            latency_ms=latency,
            checked_at=now - ago - timedelta(seconds=n),
        )
        for n, latency in enumerate(latencies)
    )


@pytest.fixture
def history():
    """A day of 100 results (10 unhealthy), 20 slow ones 3 days ago, 10 at 20 days."""
    now = timezone.now()
    component = make_component(slug="api")
    day = [float(n) for n in range(1, 101)]
    results = _results(
        component, now, ago=timedelta(hours=1), latencies=day, unhealthy=10
    )
    week = [1000.0 + n for n in range(20)]
    results += _results(component, now, ago=timedelta(days=3), latencies=week)
    month = [5.0] * 10
    results += _results(
        component, now, ago=timedelta(days=20), latencies=month, unhealthy=10
    )
    checks_rolled(results)
    return component, now, {"24h": day, "7d": day + week, "30d": day + week + month}


def test_component_stats__results_over_periods__uptime_and_percentiles(history):
    component, now, latencies = history
    stats = {p.period: p for p in component_stats(component=component, now=now).periods}
    assert [stats[p].checks for p in ("24h", "7d", "30d", "365d")] == [
        100,
        120,
        130,
        130,
    ]
    assert stats["24h"].uptime_pct == 90.0
    assert stats["30d"].uptime_pct == pytest.approx(110 * 100 / 130, abs=0.001)
    for period, values in latencies.items():
        got = (stats[period].p50_ms, stats[period].p95_ms, stats[period].p99_ms)
        expected = tuple(_lower_quantile(values, f) for f in (0.5, 0.95, 0.99))
        assert got == pytest.approx(expected, rel=RELATIVE_ACCURACY), period
    # The oldest rollup the year read: the day of the oldest checks.
    oldest = (now - timedelta(days=20)).replace(hour=0, minute=0, second=0)
    assert stats_covered(component, now) == oldest.replace(microsecond=0)


def stats_covered(component, now):
    return component_stats(component=component, now=now).covered_since


def test_component_stats__no_results__none_not_zero():
    component = make_component()
    stats = component_stats(component=component, now=timezone.now())
    day = stats.periods[0]
    assert (day.checks, day.uptime_pct, day.p50_ms, day.p99_ms) == (0, None, None, None)
    assert stats.covered_since is None


@pytest.fixture
def incidents():
    """One incident that lasted an hour (2 h ago) and one going on for 10 minutes."""
    now = timezone.now()
    component = make_component(slug="db")
    opened = now - timedelta(hours=2)
    StateChange.objects.bulk_create(
        [
            StateChange(
                component=component,
                from_state="healthy",
                to_state="unhealthy",
                at=opened,
                incident_opened=True,
                message="refused",
            ),
            StateChange(
                component=component,
                from_state="unhealthy",
                to_state="healthy",
                at=opened + timedelta(hours=1),
                incident_duration=timedelta(hours=1),
            ),
            StateChange(
                component=component,
                from_state="healthy",
                to_state="unhealthy",
                at=now - timedelta(minutes=10),
                incident_opened=True,
                message="timed out",
            ),
        ]
    )
    return component, now


def test_incidents_recent__closed_and_ongoing__paired_newest_first(incidents):
    component, now = incidents
    ongoing, closed = incidents_recent(component=component, now=now)
    assert (ongoing.ended_at, ongoing.duration_s, ongoing.message) == (
        None,
        600.0,
        "timed out",
    )
    assert (closed.duration_s, closed.message) == (3600.0, "refused")
    assert closed.ended_at - closed.started_at == timedelta(hours=1)


def test_component_stats__incidents__counted_with_downtime(incidents):
    component, now = incidents
    day = component_stats(component=component, now=now).periods[0]
    assert (day.incidents, day.downtime_s) == (2, 3600.0)


def test_api_stats__reader__periods_and_incidents(client, incidents):
    headers = bearer(make_token(scopes=("read",))[1])
    body = client.get("/api/v1/components/db/stats", headers=headers).json()
    assert [p["period"] for p in body["periods"]] == ["24h", "7d", "30d", "365d"]
    assert [i["ended_at"] is None for i in body["incidents"]] == [True, False]
    assert body["incidents"][1]["duration_s"] == 3600.0


def test_api_stats__unknown_component__404(client):
    headers = bearer(make_token(scopes=("read",))[1])
    response = client.get("/api/v1/components/nope/stats", headers=headers)
    assert response.status_code == 404


def test_admin_change_page__history__statistics_shown(client, history):
    component, _, _ = history
    client.force_login(make_user(role="viewer"))
    url = reverse("admin:components_component_change", args=[component.pk])
    page = client.get(url).content.decode()
    assert "<td>24h</td>" in page
    assert "90.000 %" in page
