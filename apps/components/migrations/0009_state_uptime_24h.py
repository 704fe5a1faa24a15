"""The 24 h uptime kept on each state row, filled once here so the lists show and
sort it from the deploy on, before the first periodic refresh."""

from datetime import UTC, datetime, timedelta

from django.db import migrations, models

# As components.services.uptime refreshes it at this migration (frozen here).
_FILL_SQL = """
WITH up AS (
    SELECT s.tags, SUM(r.sum) * 100.0 / SUM(r.count::float8) AS pct
    FROM metrics_series s JOIN metrics_rollup r ON r.series_id = s.id
    WHERE s.name = 'component.check.up' AND r.resolution = 'hour'
        AND r.bucket_start >= %(start)s AND r.bucket_start < %(end)s
    GROUP BY s.id
)
UPDATE components_componentstate cs
SET uptime_24h_pct = up.pct, uptime_24h_until = %(end)s
FROM components_component c LEFT JOIN up
    ON up.tags = jsonb_build_object('component', c.slug)
WHERE cs.component_id = c.id
"""


def fill(apps, schema_editor):
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_FILL_SQL, {"start": end - timedelta(hours=24), "end": end})


class Migration(migrations.Migration):
    dependencies = [
        ("components", "0008_healthresult_no_single_component_index"),
        ("metrics", "0004_series_name_tags"),
    ]

    operations = [
        migrations.AddField(
            model_name="componentstate",
            name="uptime_24h_pct",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="componentstate",
            name="uptime_24h_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
    ]
