"""Writes of the components app: registry, scheduling, recording results."""

from apps.components.services.registry import (
    SELF_COMPONENTS,
    component_create,
    component_pause,
    component_resume,
    components_ensure_self,
    maintenance_end,
    maintenance_window_create,
)
from apps.components.services.scheduling import (
    CLAIM_MARGIN_SECONDS,
    MAX_BATCHES_PER_TICK,
    RUN_BATCH_TASK,
    component_check_now,
    components_dispatch_due,
    components_run_batch,
    results_prune,
)

__all__ = [
    "CLAIM_MARGIN_SECONDS",
    "MAX_BATCHES_PER_TICK",
    "RUN_BATCH_TASK",
    "SELF_COMPONENTS",
    "component_check_now",
    "component_create",
    "component_pause",
    "component_resume",
    "components_dispatch_due",
    "components_ensure_self",
    "components_run_batch",
    "maintenance_end",
    "maintenance_window_create",
    "results_prune",
]
