"""Metrics (flow 5): ``record()`` in-process; see apps.metrics.services for the rest."""

from apps.metrics.recording import record

__all__ = ["record"]
