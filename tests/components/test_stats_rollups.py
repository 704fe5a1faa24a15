"""Statistics end to end: checks recorded through ``metrics.record`` (this
process's persister lands them), rolled up, read back equal to the raw results."""

import math
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.components.checkers.base import CheckOutcome
from apps.components.models import HealthResult
from apps.components.recording import result_record_pushed
from apps.components.stats import component_stats
from apps.metrics.sketch import RELATIVE_ACCURACY
from tests.components.helpers import make_component, rolls_closed, samples_forgotten
from tests.procs import wait_until

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
STATUSES = ("healthy", "degraded", "unhealthy", "healthy", "healthy")


def _landed(slug: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM metrics_sample m JOIN metrics_series s"
            " ON s.id = m.series_id WHERE s.name LIKE 'component.check.%%'"
            " AND s.tags->>'component' = %s",
            [slug],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def console_series(settings):
    settings.OPSCONSOLE_METRICS_CONSOLE_SERIES = True
    with samples_forgotten():
        yield


def test_component_stats__checks_recorded_and_rolled__equal_to_raw_results(
    console_series,
):
    # Given 120 checks recorded the way the runner records them
    slug = f"e2e-{uuid.uuid4().hex[:8]}"
    component = make_component(slug=slug)
    for n in range(120):
        outcome = CheckOutcome(STATUSES[n % 5], 3.0 + (n * 37) % 500, "checked")
        result_record_pushed(
            component_id=component.pk, outcome=outcome, now=timezone.now()
        )
    wait_until(lambda: _landed(slug) == 240, timeout=30, what="check samples")
    # When the rollups run past the checks' minute and the statistics are read
    rolls_closed(timezone.now() + timedelta(days=2))
    stats = component_stats(
        component=component, now=timezone.now() + timedelta(minutes=2)
    )
    # Then every period has every check: uptime exact, percentiles within 1 %
    results = list(HealthResult.objects.filter(component=component))
    up = sum(result.status != "unhealthy" for result in results)
    latencies = sorted(result.latency_ms for result in results)
    for period in stats.periods:
        assert (period.checks, period.uptime_pct) == (120, round(up * 100 / 120, 3))
        got = (period.p50_ms, period.p95_ms, period.p99_ms)
        exact = [latencies[math.floor(q * 119)] for q in (0.5, 0.95, 0.99)]
        assert got == pytest.approx(exact, rel=RELATIVE_ACCURACY), period.period
