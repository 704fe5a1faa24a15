"""Writes of the flags app. Every door (admin, API, CLI, tasks) calls these."""

from apps.flags.services.approvals import (
    change_request_apply,
    change_request_approve,
    change_request_cancel,
    change_request_create,
    change_request_reject,
    change_request_update,
)
from apps.flags.services.flags import (
    FlagChange,
    flag_archive,
    flag_create,
    flag_revert,
    flag_toggle,
    flag_update,
    flag_upsert,
    flag_validate,
    segment_upsert,
)
from apps.flags.services.schedules import (
    scheduled_change_cancel,
    scheduled_change_create,
    scheduled_changes_apply_due,
)
from apps.flags.services.transfer import SetChange, flag_set_import
from apps.flags.services.usage import UsageDelta, flag_usage_add

__all__ = [
    "FlagChange",
    "SetChange",
    "UsageDelta",
    "change_request_apply",
    "change_request_approve",
    "change_request_cancel",
    "change_request_create",
    "change_request_reject",
    "change_request_update",
    "flag_archive",
    "flag_create",
    "flag_revert",
    "flag_set_import",
    "flag_toggle",
    "flag_update",
    "flag_upsert",
    "flag_usage_add",
    "flag_validate",
    "scheduled_change_cancel",
    "scheduled_change_create",
    "scheduled_changes_apply_due",
    "segment_upsert",
]
