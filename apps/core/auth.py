"""Placeholder replaced by the token auth work (issue 3)."""

from typing import Any

API_AUTH: list[Any] = []
