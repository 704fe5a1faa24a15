"""Healing: policies, actions and attempts (flow 3). In-process API: ``action``.

``@healing.action("name")`` registers a Python callable that a policy with
``action: python, config: {"name": "name"}`` runs.
"""

from apps.healing.actions.base import ActionResult, HealContext
from apps.healing.actions.python import action

__all__ = ["ActionResult", "HealContext", "action"]
