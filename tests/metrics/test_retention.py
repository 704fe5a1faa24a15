"""Rollup retention (#7 item 5): days per resolution, overridden per metric name by
OPSCONSOLE_METRICS_RETENTION_RULES (first matching rule naming the resolution)."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.metrics.models import NameRollup, Resolution, Rollup, Series
from apps.metrics.retention import retention_days
from apps.metrics.services import retention_apply

pytestmark = pytest.mark.django_db
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def defaults(settings):
    settings.OPSCONSOLE_METRICS_MINUTE_RETENTION_DAYS = 30
    settings.OPSCONSOLE_METRICS_HOUR_RETENTION_DAYS = 400
    settings.OPSCONSOLE_METRICS_DAY_RETENTION_DAYS = 1825
    return settings


def rollups_aged(
    name: str,
    ages_days: list[float],
    resolution: str = "minute",
    *,
    named: bool = True,
    **tags: str,
) -> None:
    """A series of ``name`` (and unless not ``named`` the name's own rollups), one
    bucket per age."""
    series = Series.objects.create(name=name, tags=tags, tags_hash=f"{name}{tags}")
    for age in ages_days:
        start = NOW - timedelta(days=age)
        fields = {
            "resolution": resolution,
            "bucket_start": start,
            "count": 1,
            "sum": 1.0,
            "min": 1.0,
            "max": 1.0,
            "sketch_keys": [1],
            "sketch_counts": [1],
        }
        Rollup.objects.create(series=series, **fields)
        if named:
            NameRollup.objects.create(name=name, **fields)


def ages_left(name: str, resolution: str = "minute") -> tuple[list[float], list[float]]:
    """(series, per-name) rollup ages in days still stored, ascending."""

    def ages(rows) -> list[float]:
        return sorted(round((NOW - at) / timedelta(days=1), 1) for at in rows)

    return (
        ages(
            Rollup.objects.filter(series__name=name, resolution=resolution).values_list(
                "bucket_start", flat=True
            )
        ),
        ages(
            NameRollup.objects.filter(name=name, resolution=resolution).values_list(
                "bucket_start", flat=True
            )
        ),
    )


def test_retention__rule_for_a_name__its_minutes_go_after_its_days(defaults):
    defaults.OPSCONSOLE_METRICS_RETENTION_RULES = [("component.check.*", {"minute": 2})]
    rollups_aged("component.check.up", [1, 3, 31], component="a")
    rollups_aged("component.check.up", [1, 3], named=False, component="b")
    rollups_aged("app.latency", [1, 3, 31])

    result = retention_apply(now=NOW)

    assert ages_left("component.check.up") == ([1, 1], [1])
    assert ages_left("app.latency") == ([1, 3], [1, 3])
    # Series: a's 3 and 31, b's 3, app's 31; per name: 3 and 31, app's 31.
    assert result.rollups_deleted["minute"] == 4 + 3


def test_retention__first_matching_rule_wins_and_may_keep_longer(defaults):
    defaults.OPSCONSOLE_METRICS_RETENTION_RULES = [
        ("app.keep", {"minute": 60}),
        ("app.*", {"minute": 1}),
        ("app.keep", {"minute": 5}),
    ]
    rollups_aged("app.keep", [0.5, 31, 61])
    rollups_aged("app.other", [0.5, 2])
    rollups_aged("app_x", [2, 31])  # "_" is no wildcard: the default applies

    retention_apply(now=NOW)

    assert ages_left("app.keep") == ([0.5, 31], [0.5, 31])
    assert ages_left("app.other") == ([0.5], [0.5])
    assert ages_left("app_x") == ([2], [2])


def test_retention__rule_without_a_resolution__default_days_for_it(defaults):
    defaults.OPSCONSOLE_METRICS_RETENTION_RULES = [("app.*", {"minute": 1})]
    rollups_aged("app.x", [10, 401], resolution="hour")

    retention_apply(now=NOW)

    assert ages_left("app.x", "hour") == ([10], [10])


def test_retention_days__first_rule_naming_the_resolution(defaults):
    defaults.OPSCONSOLE_METRICS_RETENTION_RULES = [
        ("app.*", {"hour": 9}),
        ("app.x", {"minute": 3, "hour": 99}),
    ]
    assert retention_days(name="app.x", resolution=Resolution.MINUTE) == 3
    assert retention_days(name="app.x", resolution=Resolution.HOUR) == 9
    assert retention_days(name="app.x", resolution=Resolution.DAY) == 1825
    assert retention_days(name="other", resolution=Resolution.MINUTE) == 30
