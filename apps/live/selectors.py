"""Reads of the live app: the latest queue and worker sample, for snapshots."""

import json
from typing import Any

from apps.core.redis import shared_redis
from apps.live.services import sample_key


def _latest() -> dict[str, Any]:
    return json.loads(shared_redis().get(sample_key()) or '{"sampled_at": null}')


def queues_latest() -> dict[str, Any]:
    """``{"sampled_at", "queues": [...]}`` from the last sample (None when never)."""
    latest = _latest()
    return {"sampled_at": latest["sampled_at"], "queues": latest.get("queues", [])}


def workers_latest() -> dict[str, Any]:
    """``{"sampled_at", "workers": [...]}`` from the last sample (None when never)."""
    latest = _latest()
    return {"sampled_at": latest["sampled_at"], "workers": latest.get("workers", [])}
