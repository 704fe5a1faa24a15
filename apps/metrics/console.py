"""Reads of the console's own state that /metrics exposes (read at scrape time)."""

from dataclasses import dataclass
from datetime import timedelta

from django.db import connection

from apps.components.models import Component, ComponentState, HealthResult
from apps.flags.models import FlagUsage

# Check latencies are summarised over this trailing window at each scrape.
LATENCY_WINDOW = timedelta(minutes=5)
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class ComponentStateRow:
    component: str
    group: str
    state: str


@dataclass(frozen=True, slots=True)
class CheckLatency:
    """One component's checks in the window: quantiles, count and sum, in seconds."""

    component: str
    quantiles: tuple[float, ...]
    count: int
    sum: float


def component_states() -> list[ComponentStateRow]:
    """Every component's current state ("unknown" before its first check)."""
    states = dict(ComponentState.objects.values_list("component_id", "state"))
    return [
        ComponentStateRow(slug, group, states.get(pk, "unknown"))
        for pk, slug, group in Component.objects.order_by("slug").values_list(
            "id", "slug", "group"
        )
    ]


def check_latencies() -> list[CheckLatency]:
    """Latency quantiles of each component's checks within ``LATENCY_WINDOW``."""
    sql = f"""
        SELECT c.slug,
               percentile_cont(%s::float8[]) WITHIN GROUP (ORDER BY h.latency_ms),
               count(*), sum(h.latency_ms)
        FROM {HealthResult._meta.db_table} h
        JOIN {Component._meta.db_table} c ON c.id = h.component_id
        WHERE h.checked_at >= now() - make_interval(secs => %s)
        GROUP BY c.slug ORDER BY c.slug
    """  # noqa: S608 - table names from our models, values bound
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(QUANTILES), LATENCY_WINDOW.total_seconds()])
        rows = cursor.fetchall()
    return [
        CheckLatency(slug, tuple(q / 1000 for q in quantiles), count, total / 1000)
        for slug, quantiles, count, total in rows
    ]


def flag_evaluations() -> list[tuple[str, int]]:
    """Each flag's fleet-wide evaluation count (as flushed into FlagUsage)."""
    return list(FlagUsage.objects.order_by("key").values_list("key", "evaluations"))
