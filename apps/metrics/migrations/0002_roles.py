from django.db import migrations

from apps.core.roles import VIEWER, grant


def grant_metrics(apps, schema_editor):
    grant(apps, VIEWER, "metrics", ["view_series", "view_rollup"])


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_roles"),
        ("metrics", "0001_initial"),
    ]

    operations = [migrations.RunPython(grant_metrics, migrations.RunPython.noop)]
