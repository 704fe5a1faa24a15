"""The raw samples' BRIN index summarizes each block range once it fills
(``autosummarize``; autovacuum does it within its naptime). Otherwise only a
VACUUM summarizes, autovacuum's insert threshold lets a day partition grow by a
fifth first, and every read of a time range (the minute rollup's, every minute)
scans the unsummarized ranges whole: at 10M samples each read scanned them all.

A partitioned index takes no storage parameters by ALTER, and new partitions
copy the parent's, so the index is built again (BRIN: one pass per partition)."""

from django.db import migrations

DROP = "DROP INDEX metrics_sample_at_brin"
CREATE = "CREATE INDEX metrics_sample_at_brin ON metrics_sample USING brin (at)"


class Migration(migrations.Migration):
    dependencies = [("metrics", "0005_namerollup_tag")]

    operations = [
        migrations.RunSQL(
            sql=[DROP, f"{CREATE} WITH (autosummarize = on)"],
            reverse_sql=[DROP, CREATE],
        ),
    ]
