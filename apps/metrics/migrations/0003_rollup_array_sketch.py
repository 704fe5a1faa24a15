"""Rollup sketches as two integer arrays (bucket codes ascending, their counts)
instead of a JSONB map, and per-name rollups (every series of a name merged).

Reversible: the JSONB map is rebuilt from the arrays on the way back (its text
keys are a function of the codes, see ``apps.metrics.sketch``), and the per-name
rollups are dropped. The per-name rollups of the data already rolled are built
here, minutes from the series' minutes, hours and days from the series' hours
and days (the same counts as merging the per-name minutes).
"""

import django.contrib.postgres.fields
import django.utils.timezone
from django.db import migrations, models

OFFSET = 1 << 20  # apps.metrics.sketch.CODE_OFFSET, frozen here
TO_ARRAYS = f"""
UPDATE metrics_rollup r SET sketch_keys = k.keys, sketch_counts = k.counts
FROM (
    SELECT r2.id, array_agg(e.code ORDER BY e.code) AS keys,
           array_agg(e.c ORDER BY e.code) AS counts
    FROM metrics_rollup r2, LATERAL (
        SELECT CASE WHEN key = 'z' THEN 0
                    WHEN left(key, 1) = 'n' THEN -(substr(key, 2)::int + {OFFSET})
                    ELSE key::int + {OFFSET} END AS code,
               value::bigint AS c
        FROM jsonb_each_text(r2.sketch)
    ) e
    GROUP BY r2.id
) k
WHERE k.id = r.id
"""  # noqa: S608 - built from constants only
TO_JSONB = f"""
UPDATE metrics_rollup SET sketch = (
    SELECT jsonb_object_agg(
        CASE WHEN code = 0 THEN 'z'
             WHEN code > 0 THEN (code - {OFFSET})::text
             ELSE 'n' || (-code - {OFFSET}) END,
        c)
    FROM unnest(sketch_keys, sketch_counts) AS e(code, c)
)
"""  # noqa: S608 - built from constants only
NAME_ROLLUPS = """
INSERT INTO metrics_namerollup (resolution, name, bucket_start, count, sum, min,
                                max, sketch_keys, sketch_counts, rolled_at)
WITH r AS (
    SELECT r.*, s.name FROM metrics_rollup r JOIN metrics_series s ON s.id = r.series_id
), a AS (
    SELECT resolution, name, bucket_start, sum(count)::bigint AS n, sum(sum) AS s,
           min(min) AS lo, max(max) AS hi
    FROM r GROUP BY 1, 2, 3
), k AS (
    SELECT resolution, name, bucket_start, array_agg(key ORDER BY key) AS keys,
           array_agg(c ORDER BY key) AS counts
    FROM (
        SELECT r.resolution, r.name, r.bucket_start, e.key, sum(e.c)::bigint AS c
        FROM r, unnest(r.sketch_keys, r.sketch_counts) AS e(key, c)
        GROUP BY 1, 2, 3, 4
    ) merged GROUP BY 1, 2, 3
)
SELECT a.resolution, a.name, a.bucket_start, a.n, a.s, a.lo, a.hi, k.keys, k.counts,
       now()
FROM a JOIN k USING (resolution, name, bucket_start)
"""


def _array(base: models.Field, *, null: bool) -> models.Field:
    return django.contrib.postgres.fields.ArrayField(base_field=base, null=null)


class Migration(migrations.Migration):
    dependencies = [("metrics", "0002_roles")]

    operations = [
        migrations.AlterField("rollup", "sketch", models.JSONField(null=True)),
        migrations.AddField(
            "rollup", "sketch_keys", _array(models.IntegerField(), null=True)
        ),
        migrations.AddField(
            "rollup", "sketch_counts", _array(models.BigIntegerField(), null=True)
        ),
        migrations.RunSQL(TO_ARRAYS, TO_JSONB),
        migrations.AlterField(
            "rollup", "sketch_keys", _array(models.IntegerField(), null=False)
        ),
        migrations.AlterField(
            "rollup", "sketch_counts", _array(models.BigIntegerField(), null=False)
        ),
        migrations.RemoveField("rollup", "sketch"),
        migrations.AddIndex(
            "rollup",
            models.Index(
                fields=["resolution", "bucket_start"], name="metrics_rollup_time"
            ),
        ),
        migrations.CreateModel(
            name="NameRollup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                (
                    "resolution",
                    models.CharField(
                        choices=[
                            ("minute", "Minute"),
                            ("hour", "Hour"),
                            ("day", "Day"),
                        ],
                        max_length=6,
                    ),
                ),
                ("bucket_start", models.DateTimeField()),
                ("count", models.BigIntegerField()),
                ("sum", models.FloatField()),
                ("min", models.FloatField()),
                ("max", models.FloatField()),
                ("sketch_keys", _array(models.IntegerField(), null=False)),
                ("sketch_counts", _array(models.BigIntegerField(), null=False)),
                (
                    "rolled_at",
                    models.DateTimeField(default=django.utils.timezone.now),
                ),
                ("name", models.CharField(max_length=200)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("resolution", "name", "bucket_start"),
                        name="metrics_namerollup_bucket",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("resolution__in", ["minute", "hour", "day"])
                        ),
                        name="metrics_namerollup_known_resolution",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("count__gte", 1)),
                        name="metrics_namerollup_count_min",
                    ),
                ],
            },
        ),
        migrations.RunSQL(NAME_ROLLUPS, migrations.RunSQL.noop),
    ]
