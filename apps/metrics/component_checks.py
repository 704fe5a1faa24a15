"""The persister's own health as a component check (autodiscovered by components).

Register a component of kind ``python`` with ``{"name": "metrics_persister"}``.
"""

from apps.components import checker
from apps.components.checkers.base import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    CheckOutcome,
    Stopwatch,
)
from apps.metrics.heartbeat import fleet_reports


@checker("metrics_persister")
def metrics_persister() -> CheckOutcome:
    """Across every process's report: unhealthy while one drops samples (within the
    last minute), degraded while one spills or finds PostgreSQL away."""
    watch = Stopwatch()
    reports = [report for report in fleet_reports() if report.persister is not None]
    dropping = [report.process for report in reports if report.dropping]
    spilling = [report.process for report in reports if report.spilling]
    details = {"processes": len(reports), "dropping": dropping, "spilling": spilling}
    if dropping:
        message = f"dropping samples in {', '.join(dropping)}"
        return CheckOutcome(UNHEALTHY, watch.ms(), message, details)
    if spilling:
        message = f"spilling to disk in {', '.join(spilling)}"
        return CheckOutcome(DEGRADED, watch.ms(), message, details)
    return CheckOutcome(HEALTHY, watch.ms(), f"{len(reports)} persisters", details)
