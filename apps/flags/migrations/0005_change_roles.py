from django.db import migrations

from apps.core.roles import OPERATOR, VIEWER, grant


def grant_changes(apps, schema_editor):
    grant(
        apps,
        VIEWER,
        "flags",
        ["view_changerequest", "view_scheduledchange", "view_flagusage"],
    )
    grant(
        apps,
        OPERATOR,
        "flags",
        ["change_changerequest", "add_scheduledchange", "change_scheduledchange"],
    )


class Migration(migrations.Migration):
    dependencies = [
        ("flags", "0004_change_requests_schedules_usage"),
    ]

    operations = [migrations.RunPython(grant_changes, migrations.RunPython.noop)]
