from django.db import migrations

from apps.core.roles import OPERATOR, VIEWER, grant


def grant_healing(apps, schema_editor):
    grant(apps, VIEWER, "healing", ["view_healingpolicy", "view_healingattempt"])
    grant(apps, OPERATOR, "healing", ["add_healingpolicy", "change_healingpolicy"])


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_roles"),
        ("healing", "0001_initial"),
    ]

    operations = [migrations.RunPython(grant_healing, migrations.RunPython.noop)]
