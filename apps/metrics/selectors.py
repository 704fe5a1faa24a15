"""Every read of the metrics app: range queries over rollups."""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from apps.core.exceptions import ValidationFailed
from apps.metrics.models import Resolution
from apps.metrics.rollups import SIZE
from apps.metrics.sketch import quantile

MAX_BUCKETS = 10_000
QUERY_SQL = """
WITH r AS (
    SELECT r.* FROM metrics_rollup r JOIN metrics_series s ON s.id = r.series_id
    WHERE s.name = %(name)s AND s.tags @> %(tags)s::jsonb
      AND r.resolution = %(resolution)s
      AND r.bucket_start >= %(start)s AND r.bucket_start < %(end)s
), a AS (
    SELECT date_bin(%(step)s, bucket_start, %(start)s) AS b, sum(count) AS n,
           sum(sum) AS s, min(min) AS lo, max(max) AS hi
    FROM r GROUP BY 1
), k AS (
    SELECT date_bin(%(step)s, bucket_start, %(start)s) AS b, e.key,
           sum(e.value::bigint) AS c
    FROM r, jsonb_each_text(r.sketch) AS e GROUP BY 1, 2
)
SELECT a.b, a.n, a.s, a.lo, a.hi, k.sketch FROM a JOIN (
    SELECT b, jsonb_object_agg(key, c) AS sketch FROM k GROUP BY b
) k USING (b) ORDER BY a.b
"""


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    count: int
    sum: float
    min: float
    max: float
    avg: float
    p50: float | None
    p95: float | None
    p99: float | None


def resolution_for(*, step: int) -> Resolution:
    """The coarsest rollup whose buckets tile ``step`` seconds exactly."""
    for resolution in (Resolution.DAY, Resolution.HOUR, Resolution.MINUTE):
        size = int(SIZE[resolution].total_seconds())
        if step >= size and step % size == 0:
            return resolution
    raise ValidationFailed({"step": ["Must be a whole number of minutes (≥ 60)."]})


def metrics_query(
    *, name: str, tags: dict[str, str], start: datetime, end: datetime, step: int
) -> tuple[Resolution, list[Bucket]]:
    """Count, sum, min, max, avg and p50/p95/p99 per ``step`` over [start, end)."""
    if end <= start or (end - start).total_seconds() / step > MAX_BUCKETS:
        raise ValidationFailed(
            {"to": [f"Must be after from, with at most {MAX_BUCKETS} steps between."]}
        )
    resolution = resolution_for(step=step)
    params: dict[str, Any] = {
        "name": name,
        "tags": _json(tags),
        "resolution": resolution.value,
        "start": start,
        "end": end,
        "step": timedelta(seconds=step),
    }
    with connection.cursor() as cursor:
        cursor.execute(QUERY_SQL, params)
        return resolution, [_bucket(*row) for row in cursor.fetchall()]


def _bucket(
    start: datetime, count: int, total: float, low: float, high: float, sketch: Any
) -> Bucket:
    sketch = _loads(sketch)
    p50, p95, p99 = (
        quantile(sketch, q, lowest=low, highest=high) for q in (0.5, 0.95, 0.99)
    )
    return Bucket(
        start, int(count), total, low, high, total / int(count), p50, p95, p99
    )


def _json(tags: dict[str, str]) -> str:
    return json.dumps(tags)


def _loads(sketch: Any) -> dict[str, int]:
    # Django's cursor hands jsonb back as text (it registers its own loader).
    return json.loads(sketch) if isinstance(sketch, str) else dict(sketch)
