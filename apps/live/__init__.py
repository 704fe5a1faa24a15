"""Live state for the dashboard. ``publish`` is the one place that sends it."""

from apps.live.publisher import publish

__all__ = ["publish"]
