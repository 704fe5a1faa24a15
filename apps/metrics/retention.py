"""How long rollups are kept: days per resolution, overridden per metric name.

``OPSCONSOLE_METRICS_{MINUTE,HOUR,DAY}_RETENTION_DAYS`` are the defaults. Within
``OPSCONSOLE_METRICS_RETENTION_RULES`` the first rule whose glob matches a name and
that gives days for a resolution sets that name's days for it (series and per-name
rollups alike). Expired rollups are deleted in bounded batches, each its own short
transaction: a rule's rollups through its series (the (resolution, series, bucket)
index, a range per series), the rest by time.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from django.conf import settings
from django.db import connection

from apps.metrics.models import Resolution

BATCH = 10_000
SERIES_CHUNK = 1_000

RULE_SERIES_SQL = """
SELECT id FROM metrics_series
WHERE name LIKE %(pattern)s AND NOT name LIKE ANY(%(earlier)s::text[]) ORDER BY id
"""
SERIES_DELETE_SQL = """
DELETE FROM metrics_rollup WHERE id IN (
    SELECT id FROM metrics_rollup
    WHERE resolution = %(resolution)s AND series_id = ANY(%(series)s)
      AND bucket_start < %(before)s
    LIMIT %(batch)s
)
"""
UNRULED_SERIES_DELETE_SQL = """
DELETE FROM metrics_rollup WHERE id IN (
    SELECT r.id FROM metrics_rollup r
    WHERE r.resolution = %(resolution)s AND r.bucket_start < %(before)s
      AND NOT EXISTS (
          SELECT 1 FROM metrics_series s
          WHERE s.id = r.series_id AND s.name LIKE ANY(%(earlier)s::text[])
      )
    LIMIT %(batch)s
)
"""
NAME_DELETE_SQL = """
DELETE FROM metrics_namerollup WHERE id IN (
    SELECT id FROM metrics_namerollup
    WHERE resolution = %(resolution)s AND bucket_start < %(before)s
      AND name LIKE %(pattern)s AND NOT name LIKE ANY(%(earlier)s::text[])
    LIMIT %(batch)s
)
"""


def retention_days(*, name: str, resolution: Resolution) -> int:
    """Days the rollups of metric ``name`` at ``resolution`` are kept."""
    for pattern, days in settings.OPSCONSOLE_METRICS_RETENTION_RULES:
        if resolution.value in days and fnmatchcase(name, pattern):
            return int(days[resolution.value])
    return _default_days(resolution)


def rollups_expire(*, now: datetime) -> dict[str, int]:
    """Delete every rollup past its retention; rows deleted per resolution."""
    return {
        resolution.value: _expire(resolution, now)
        for resolution in (Resolution.MINUTE, Resolution.HOUR, Resolution.DAY)
    }


def _default_days(resolution: Resolution) -> int:
    return {
        Resolution.MINUTE: settings.OPSCONSOLE_METRICS_MINUTE_RETENTION_DAYS,
        Resolution.HOUR: settings.OPSCONSOLE_METRICS_HOUR_RETENTION_DAYS,
        Resolution.DAY: settings.OPSCONSOLE_METRICS_DAY_RETENTION_DAYS,
    }[resolution]


def _like(pattern: str) -> str:
    """The glob ``pattern`` as a LIKE pattern (backslash escapes)."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _expire(resolution: Resolution, now: datetime) -> int:
    rules = [
        (_like(pattern), now - timedelta(days=int(days[resolution.value])))
        for pattern, days in settings.OPSCONSOLE_METRICS_RETENTION_RULES
        if resolution.value in days
    ]
    deleted = 0
    earlier: list[str] = []
    for pattern, before in rules:
        params = {"resolution": resolution.value, "before": before, "batch": BATCH}
        for series in _chunks(_rule_series(pattern, earlier)):
            deleted += _drain(SERIES_DELETE_SQL, {**params, "series": series})
        named = {**params, "pattern": pattern, "earlier": earlier}
        deleted += _drain(NAME_DELETE_SQL, named)
        earlier = [*earlier, pattern]
    before = now - timedelta(days=_default_days(resolution))
    params = {"resolution": resolution.value, "before": before, "batch": BATCH}
    deleted += _drain(UNRULED_SERIES_DELETE_SQL, {**params, "earlier": earlier})
    everything = {**params, "pattern": "%", "earlier": earlier}
    return deleted + _drain(NAME_DELETE_SQL, everything)


def _rule_series(pattern: str, earlier: list[str]) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(RULE_SERIES_SQL, {"pattern": pattern, "earlier": earlier})
        return [row[0] for row in cursor.fetchall()]


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for low in range(0, len(ids), SERIES_CHUNK):
        yield ids[low : low + SERIES_CHUNK]


def _drain(sql: str, params: dict[str, Any]) -> int:
    """Run the batch DELETE ``sql`` until it deletes nothing; rows deleted."""
    deleted = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sql, params)
            if cursor.rowcount <= 0:
                return deleted
            deleted += cursor.rowcount
