"""Live state for the dashboard. ``publish`` is the one place that sends it."""

from apps.live.publisher import publish, publish_many

__all__ = ["publish", "publish_many"]
