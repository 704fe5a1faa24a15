"""Snapshot providers: one sync selector per topic, registered by the owning app.

``register("flags", flag_list_live)`` in the app's ``ready()``; the live consumer
calls each provider in a worker thread (``sync_to_async``) when a client subscribes
or resyncs. A topic with no provider yet has ``data: null``.
"""

from collections.abc import Callable
from typing import Any

import structlog
from asgiref.sync import sync_to_async

from apps.live.publisher import TOPICS

log = structlog.get_logger(__name__)

Provider = Callable[[], Any]

_providers: dict[str, Provider] = {}


def register(topic: str, provider: Provider) -> None:
    """Make ``provider`` (a sync selector returning JSON-able data) build ``topic``."""
    if topic not in TOPICS:
        raise ValueError(f"unknown live topic {topic!r}")
    _providers[topic] = provider


def unregister(topic: str) -> None:
    """Forget the provider of ``topic`` (tests)."""
    _providers.pop(topic, None)


def _build_sync(topics: list[str]) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for topic in topics:
        provider = _providers.get(topic)
        try:
            entries[topic] = {"data": provider() if provider is not None else None}
        except Exception:
            # The client must not mistake a failed read for empty data.
            log.exception("live.snapshot_failed", topic=topic)
            entries[topic] = {"data": None, "error": "unavailable"}
    return entries


async def build(topics: frozenset[str]) -> dict[str, dict[str, Any]]:
    """``{topic: {"data": ...}}`` from the providers, in one worker-thread hop."""
    return await sync_to_async(_build_sync)(sorted(topics))
