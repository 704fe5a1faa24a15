"""Components and their health checks (ARCHITECTURE flow 1).

``checker`` registers a Python callable as a checker kind's target:
``@components.checker("name")``.
"""

from apps.components.checkers.python import checker

__all__ = ["checker"]
