from django.db import migrations

from apps.core.roles import OPERATOR, VIEWER, grant


def grant_breakers(apps, schema_editor):
    grant(apps, VIEWER, "breakers", ["view_breaker", "view_breakerevent"])
    grant(apps, OPERATOR, "breakers", ["change_breaker"])


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_roles"),
        ("breakers", "0001_initial"),
    ]

    operations = [migrations.RunPython(grant_breakers, migrations.RunPython.noop)]
