"""The Prometheus exposition of the console itself (``/metrics``).

One custom collector builds every family at scrape time: component states, check
latencies and breakers from PostgreSQL and Redis, queues and workers from the live
app's latest sample, and the per-process counters (persister, live hub) from every
process's heartbeat report. A section whose source fails is left out and counted in
``opsconsole_scrape_errors`` so the rest still reaches Prometheus.
"""

from collections.abc import Callable, Iterable, Iterator
from time import time

import structlog
from django.conf import settings
from django.db import DatabaseError, connection
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from psycopg_pool import PoolTimeout

from apps.breakers.config import State as BreakerState
from apps.breakers.selectors import breaker_statuses
from apps.components.models import State as ComponentState
from apps.live.selectors import queues_latest, workers_latest
from apps.metrics.console import (
    QUANTILES,
    check_latencies,
    component_states,
    flag_evaluations,
)
from apps.metrics.heartbeat import ProcessReport, fleet_reports, heartbeat_start

log = structlog.get_logger(__name__)
P = "opsconsole_"
DROP_REASONS = ("buffer_full", "spill_full", "series_unresolved")
PERSISTER_COUNTERS = ("recorded", "flushed", "flush_failures", "spilled", "replayed")
PERSISTER_GAUGES = ("buffered", "spill_bytes", "database_away")
LIVE_COUNTERS = ("sent", "drops", "resyncs", "closed_slow")


def components() -> Iterator[Metric]:
    family = GaugeMetricFamily(
        f"{P}component_state",
        "1 for the component's current state, 0 for the others.",
        labels=["component", "group", "state"],
    )
    for row in component_states():
        for state in ComponentState.values:
            family.add_metric(
                [row.component, row.group, state], float(row.state == state)
            )
    yield family


def checks() -> Iterator[Metric]:
    family = SummaryMetricFamily(
        f"{P}check_latency_seconds",
        "Check latency over the last 5 minutes (count and sum over that window too).",
        labels=["component"],
    )
    for row in check_latencies():
        quantiles = list(zip(map(str, QUANTILES), row.quantiles, strict=True))
        family.add_metric([row.component], row.count, row.sum)
        for quantile, value in quantiles:
            family.add_sample(
                family.name,
                {"component": row.component, "quantile": quantile},
                value,
            )
    yield family


def breakers() -> Iterator[Metric]:
    state = GaugeMetricFamily(
        f"{P}breaker_state",
        "1 for the breaker's current state, 0 for the others.",
        labels=["breaker", "state"],
    )
    window = {
        key: GaugeMetricFamily(
            f"{P}breaker_window_{key}",
            f"{key.capitalize()} calls in the breaker's current window.",
            labels=["breaker"],
        )
        for key in ("calls", "failures", "slow")
    }
    for status in breaker_statuses():
        view = status.view
        for value in BreakerState:
            state.add_metric([view.name, value.value], float(view.state == value))
        for key, family in window.items():
            family.add_metric([view.name], getattr(view, key))
    yield state
    yield from window.values()


def queues() -> Iterator[Metric]:
    latest = queues_latest()
    age = GaugeMetricFamily(
        f"{P}live_sample_age_seconds", "Age of the latest queue and worker sample."
    )
    if latest["sampled_at"] is not None:
        age.add_metric([], time() - latest["sampled_at"])
    depth = GaugeMetricFamily(
        f"{P}queue_depth", "Messages waiting in the queue.", labels=["queue"]
    )
    oldest = GaugeMetricFamily(
        f"{P}queue_oldest_age_seconds",
        "Age of the oldest waiting message.",
        labels=["queue"],
    )
    for queue in latest["queues"]:
        depth.add_metric([queue["name"]], queue["depth"])
        if queue["oldest_age_s"] is not None:
            oldest.add_metric([queue["name"]], queue["oldest_age_s"])
    yield from (age, depth, oldest)


def workers() -> Iterator[Metric]:
    families = {
        key: GaugeMetricFamily(
            f"{P}worker_{key}",
            f"Celery worker {key} (latest sample).",
            labels=["worker"],
        )
        for key in ("active", "concurrency")
    }
    processed = CounterMetricFamily(
        f"{P}worker_processed", "Tasks the worker has processed.", labels=["worker"]
    )
    for worker in workers_latest()["workers"]:
        for key, family in families.items():
            family.add_metric([worker["name"]], worker[key])
        processed.add_metric([worker["name"]], worker["processed"])
    yield from families.values()
    yield processed


def flags() -> Iterator[Metric]:
    family = CounterMetricFamily(
        f"{P}flag_evaluations",
        "Evaluations of the flag across the fleet (flushed by each process).",
        labels=["flag"],
    )
    for key, evaluations in flag_evaluations():
        family.add_metric([key], evaluations)
    yield family


def processes() -> Iterator[Metric]:
    reports = fleet_reports()
    yield from _persister_families(reports)
    yield from _live_families(reports)
    age = GaugeMetricFamily(
        f"{P}process_report_age_seconds",
        "Seconds since the process last published its counters.",
        labels=["process", "role"],
    )
    for report in reports:
        age.add_metric([report.process, report.role], time() - report.at)
    yield age


def _persister_families(reports: list[ProcessReport]) -> Iterator[Metric]:
    labels = ["process", "role"]
    families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
        key: CounterMetricFamily(
            f"{P}metrics_{key}", f"Persister: {key}.", None, labels
        )
        for key in PERSISTER_COUNTERS
    }
    for key in PERSISTER_GAUGES:
        families[key] = GaugeMetricFamily(
            f"{P}metrics_{key}", f"Persister: {key}.", labels=labels
        )
    dropped = CounterMetricFamily(
        f"{P}metrics_dropped",
        "Samples lost: refused by a full buffer, beyond the spill bound, or of a "
        "series the process's registry no longer resolves.",
        labels=[*labels, "reason"],
    )
    for report in reports:
        stats = report.persister
        if stats is None:
            continue
        for key, family in families.items():
            family.add_metric([report.process, report.role], float(stats[key]))
        for reason in DROP_REASONS:
            value = stats.get(f"dropped_{reason}", 0)
            dropped.add_metric([report.process, report.role, reason], value)
    yield from families.values()
    yield dropped


def _live_families(reports: list[ProcessReport]) -> Iterator[Metric]:
    labels = ["process"]
    clients = GaugeMetricFamily(
        f"{P}live_clients", "Open live WebSockets in the process.", labels=labels
    )
    degraded = GaugeMetricFamily(
        f"{P}live_degraded", "1 while the hub's subscription is down.", labels=labels
    )
    counters = {
        key: CounterMetricFamily(f"{P}live_{key}", f"Live hub: {key}.", None, labels)
        for key in LIVE_COUNTERS
    }
    for report in reports:
        if report.live is None:
            continue
        clients.add_metric([report.process], report.live["connected"])
        degraded.add_metric([report.process], float(report.live["degraded"]))
        for key, family in counters.items():
            family.add_metric([report.process], report.live[key])
    yield from (clients, degraded, *counters.values())


# The sections that read PostgreSQL; the others read Redis only.
DATABASE_SECTIONS = frozenset({"components", "checks", "breakers", "flags"})
SECTIONS: dict[str, Callable[[], Iterable[Metric]]] = {
    "components": components,
    "checks": checks,
    "breakers": breakers,
    "queues": queues,
    "workers": workers,
    "flags": flags,
    "processes": processes,
}


class ConsoleCollector(Collector):
    """Every family, built from the sources at scrape time."""

    def collect(self) -> Iterator[Metric]:
        errors = GaugeMetricFamily(
            f"{P}scrape_errors",
            "1 when the section's source failed during this scrape.",
            labels=["section"],
        )
        database_answers = _database_answers()
        for section, build in SECTIONS.items():
            if section in DATABASE_SECTIONS and not database_answers:
                errors.add_metric([section], 1)
                continue
            try:
                families = list(build())
            except Exception as exc:  # noqa: BLE001 - one failed source, not all
                log.warning("metrics.scrape_failed", section=section, error=repr(exc))
                errors.add_metric([section], 1)
                # The next section would wait for the pool's timeout again.
                database_answers &= not isinstance(exc, DatabaseError)
                continue
            errors.add_metric([section], 0)
            yield from families
        yield errors


def _database_answers() -> bool:
    """Whether the pool hands out a connection within the probe timeout.

    While PostgreSQL is away each section would wait the pool's full timeout
    (10 s), making the scrape outlast Prometheus's; this asks once, briefly.
    """
    pool = getattr(connection, "pool", None)
    if pool is None or connection.connection is not None:
        return True
    try:
        pool.open()  # as Django does before its first connection; a no-op after
        pool.putconn(pool.getconn(timeout=settings.OPSCONSOLE_PROBE_TIMEOUT))
    except PoolTimeout:
        log.warning("metrics.scrape_database_away")
        return False
    return True


_registry = CollectorRegistry(auto_describe=False)
_registry.register(ConsoleCollector())


def exposition_render() -> bytes:
    """The text exposition, after publishing this process's own counters afresh."""
    heartbeat_start(role="web").publish()
    return generate_latest(_registry)
