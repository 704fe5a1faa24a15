"""The 24 h uptime each component's state row keeps for the lists to read and sort."""

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

from apps.components.models import Component, ComponentState
from apps.components.selectors import CHECK_UP_METRIC
from apps.metrics.models import Resolution, Rollup, Series

UPTIME_WINDOW = timedelta(hours=24)

# Every component's share of checks not unhealthy over the hour rollups of its
# ``component.check.up`` series {"component": slug} in [start, end), in one
# statement. Only rows whose figure or window changed are written, so most
# refreshes within an hour write few rows. SKIP LOCKED: a state row the state
# machine holds is left for the next refresh rather than waited for (and never
# deadlocked on); the state machine writes other columns of the same rows.
_REFRESH_SQL = f"""
WITH up AS (
    SELECT s.tags, SUM(r.sum) * 100.0 / SUM(r.count::float8) AS pct
    FROM "{Series._meta.db_table}" s
    JOIN "{Rollup._meta.db_table}" r ON r.series_id = s.id
    WHERE s.name = %(name)s AND r.resolution = %(resolution)s
        AND r.bucket_start >= %(start)s AND r.bucket_start < %(end)s
    GROUP BY s.id
), fresh AS (
    SELECT c.id, up.pct FROM "{Component._meta.db_table}" c
    LEFT JOIN up ON up.tags = jsonb_build_object('component', c.slug)
), stale AS (
    SELECT cs.component_id, fresh.pct
    FROM "{ComponentState._meta.db_table}" cs JOIN fresh ON fresh.id = cs.component_id
    WHERE cs.uptime_24h_pct IS DISTINCT FROM fresh.pct
        OR cs.uptime_24h_until IS DISTINCT FROM %(end)s
    FOR UPDATE OF cs SKIP LOCKED
)
UPDATE "{ComponentState._meta.db_table}" cs
SET uptime_24h_pct = stale.pct, uptime_24h_until = %(end)s
FROM stale WHERE cs.component_id = stale.component_id
"""  # noqa: S608 - names from the models, values bound


def uptime_window_end(*, now: datetime) -> datetime:
    """The end of the uptime window at ``now``: the start of ``now``'s UTC hour."""
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@transaction.atomic
def component_uptimes_refresh(*, now: datetime) -> int:
    """Store every component's uptime over the 24 whole hours before ``now``'s
    hour on its state row; the rows written."""
    end = uptime_window_end(now=now)
    with connection.cursor() as cursor:
        cursor.execute(
            _REFRESH_SQL,
            {
                "name": CHECK_UP_METRIC,
                "resolution": Resolution.HOUR.value,
                "start": end - UPTIME_WINDOW,
                "end": end,
            },
        )
        return cursor.rowcount
