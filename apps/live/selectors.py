"""Reads of the live app: the latest queue and worker sample, for snapshots."""

import json
from typing import Any

import redis
from django.conf import settings

from apps.live.services import sample_key


def _latest() -> dict[str, Any]:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1)
    return json.loads(client.get(sample_key()) or '{"sampled_at": null}')


def queues_latest() -> dict[str, Any]:
    """``{"sampled_at", "queues": [...]}`` from the last sample (None when never)."""
    latest = _latest()
    return {"sampled_at": latest["sampled_at"], "queues": latest.get("queues", [])}


def workers_latest() -> dict[str, Any]:
    """``{"sampled_at", "workers": [...]}`` from the last sample (None when never)."""
    latest = _latest()
    return {"sampled_at": latest["sampled_at"], "workers": latest.get("workers", [])}
