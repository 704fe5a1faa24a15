"""An index to find a series by name and exact tags in SQL (no sha1 there).

The components list joins each component to its ``component.check.up`` series
by ``tags = {"component": slug}``; the unique key holds a sha1 of the tags,
which PostgreSQL cannot compute without pgcrypto.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("metrics", "0003_rollup_array_sketch")]

    operations = [
        migrations.RunSQL(
            sql="CREATE INDEX metrics_series_name_tags ON metrics_series (name, tags)",
            reverse_sql="DROP INDEX metrics_series_name_tags",
        )
    ]
