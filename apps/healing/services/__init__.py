"""Writes of the healing app: policies, requests, attempts, escalation (flow 3)."""

from apps.healing.services.common import ATTEMPT_TASK, SWITCH
from apps.healing.services.episodes import (
    healing_attempt_run,
    healing_dispatch_due,
    healing_recovered,
    healing_request,
)
from apps.healing.services.policies import (
    healing_cancel,
    healing_heal_now,
    healing_set_paused,
    policy_save,
)

__all__ = [
    "ATTEMPT_TASK",
    "SWITCH",
    "healing_attempt_run",
    "healing_cancel",
    "healing_dispatch_due",
    "healing_heal_now",
    "healing_recovered",
    "healing_request",
    "healing_set_paused",
    "policy_save",
]
