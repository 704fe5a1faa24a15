"""/metrics: Prometheus text of the console itself, token-guarded, fleet-wide."""

import sys

import pytest
from django.utils.timezone import now
from prometheus_client.parser import text_string_to_metric_families

from apps import metrics
from apps.breakers.models import Breaker
from apps.components.models import ComponentState, HealthResult
from apps.flags.models import FlagUsage
from apps.metrics.heartbeat import fleet_reports
from tests.components.helpers import make_component
from tests.factories import bearer, make_token, make_user
from tests.procs import Proc, child_env, wait_until

pytestmark = pytest.mark.django_db

FAMILIES = {
    "opsconsole_component_state",
    "opsconsole_check_latency_seconds",
    "opsconsole_breaker_state",
    "opsconsole_breaker_window_calls",
    "opsconsole_queue_depth",
    "opsconsole_worker_active",
    "opsconsole_flag_evaluations",
    "opsconsole_live_clients",
    "opsconsole_metrics_buffered",
    "opsconsole_metrics_recorded",
    "opsconsole_metrics_spilled",
    "opsconsole_metrics_dropped",
    "opsconsole_scrape_errors",
}


@pytest.fixture
def reader():
    return bearer(make_token(user=make_user(role="viewer"), scopes=("read",))[1])


def scrape(client, headers) -> dict:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = text_string_to_metric_families(response.content.decode())
    return {family.name: family for family in families}


def value(family, **labels) -> float | None:
    for sample in family.samples:
        if all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_metrics__read_token__parses_with_every_named_family(client, reader):
    component = make_component(slug="exp-db")
    ComponentState.objects.filter(component=component).update(state="degraded")
    for latency in (100, 200, 300):
        HealthResult.objects.create(
            component=component, status="healthy", latency_ms=latency
        )
    Breaker.objects.create(name="exp-breaker")
    FlagUsage.objects.create(key="exp.flag", evaluations=42, last_evaluated_at=now())
    metrics.record("t.exposition", 1.0)
    families = scrape(client, reader)
    assert families.keys() >= FAMILIES
    assert all(s.value == 0 for s in families["opsconsole_scrape_errors"].samples)
    states = families["opsconsole_component_state"]
    assert value(states, component="exp-db", state="degraded") == 1
    assert value(states, component="exp-db", state="healthy") == 0
    latency = families["opsconsole_check_latency_seconds"]
    assert value(latency, component="exp-db", quantile="0.5") == pytest.approx(0.2)
    breaker = families["opsconsole_breaker_state"]
    assert value(breaker, breaker="exp-breaker", state="CLOSED") == 1
    assert value(families["opsconsole_flag_evaluations"], flag="exp.flag") == 42


def test_metrics__no_token__401_with_the_error_shape(client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert set(response.json()) == {"detail", "code", "extra"}


def test_metrics__unknown_token__401(client):
    response = client.get("/metrics", headers=bearer("opc_abcdefgh_" + "x" * 32))
    assert response.status_code == 401


def test_metrics__public_setting__200_without_token(client, settings):
    settings.OPSCONSOLE_METRICS_PUBLIC = True
    assert "opsconsole_scrape_errors" in scrape(client, {})


def test_metrics__samples_recorded_in_another_process__its_counters_show(
    client, reader, tmp_path
):
    child = Proc(
        "recorder",
        [sys.executable, "-m", "tests.metrics.recorder", "hold", "t.exp.child", "500"],
        child_env(OPSCONSOLE_METRICS_SPILL_DIR=str(tmp_path)),
        tmp_path / "recorder.log",
    )
    try:
        name = f":{child.popen.pid}"

        def flushed_in_child():
            family = scrape(client, reader)["opsconsole_metrics_flushed"]
            mine = [s for s in family.samples if s.labels["process"].endswith(name)]
            return mine and mine[0].value == 500

        wait_until(
            flushed_in_child, timeout=30, what=f"child counters {child.output()}"
        )
        families = scrape(client, reader)
        recorded = families["opsconsole_metrics_recorded"]
        assert value(recorded, process=_process(name), role="process") == 500
    finally:
        child.stop()


def _process(suffix: str) -> str:
    return next(r.process for r in fleet_reports() if r.process.endswith(suffix))
