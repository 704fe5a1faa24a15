"""Per-tag rollups: ``metrics_namerollup.tag`` ('' for the whole name, "key=value"
for the series of the name carrying that tag), unique per (resolution, name, tag,
bucket). The existing rows are the whole names: the column's default ''."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("metrics", "0004_series_name_tags")]

    operations = [
        migrations.RemoveConstraint(
            model_name="namerollup", name="metrics_namerollup_bucket"
        ),
        migrations.AddField(
            model_name="namerollup",
            name="tag",
            field=models.CharField(blank=True, db_default="", max_length=265),
        ),
        migrations.RunSQL(
            sql=migrations.RunSQL.noop,
            reverse_sql="DELETE FROM metrics_namerollup WHERE tag <> ''",
        ),
        migrations.AddConstraint(
            model_name="namerollup",
            constraint=models.UniqueConstraint(
                fields=("resolution", "name", "tag", "bucket_start"),
                name="metrics_namerollup_tag_bucket",
            ),
        ),
    ]
