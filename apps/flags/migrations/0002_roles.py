from django.db import migrations

from apps.core.roles import OPERATOR, VIEWER, grant


def grant_flags(apps, schema_editor):
    grant(apps, VIEWER, "flags", ["view_flag", "view_segment", "view_flagversion"])
    grant(
        apps,
        OPERATOR,
        "flags",
        ["add_flag", "change_flag", "add_segment", "change_segment"],
    )


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_roles"),
        ("flags", "0001_initial"),
    ]

    operations = [migrations.RunPython(grant_flags, migrations.RunPython.noop)]
