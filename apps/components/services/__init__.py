"""Writes of the components app: registry, scheduling, recording results."""

from apps.components.services.common import (
    component_config_resolved,
    component_dependencies_check,
)
from apps.components.services.editing import (
    EDITABLE,
    component_delete,
    component_update,
)
from apps.components.services.registry import (
    BEAT_HEARTBEAT_SLUG,
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
from apps.components.services.uptime import component_uptimes_refresh

__all__ = [
    "BEAT_HEARTBEAT_SLUG",
    "CLAIM_MARGIN_SECONDS",
    "EDITABLE",
    "MAX_BATCHES_PER_TICK",
    "RUN_BATCH_TASK",
    "SELF_COMPONENTS",
    "component_check_now",
    "component_config_resolved",
    "component_create",
    "component_delete",
    "component_dependencies_check",
    "component_pause",
    "component_resume",
    "component_update",
    "component_uptimes_refresh",
    "components_dispatch_due",
    "components_ensure_self",
    "components_run_batch",
    "maintenance_end",
    "maintenance_window_create",
    "results_prune",
]
