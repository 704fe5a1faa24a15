from django.db import migrations

from apps.core.roles import OPERATOR, VIEWER, grant


def grant_roles(apps, schema_editor):
    grant(
        apps,
        VIEWER,
        "components",
        ["view_notificationchannel", "view_notification"],
    )
    grant(
        apps,
        OPERATOR,
        "components",
        [
            "add_notificationchannel",
            "change_notificationchannel",
            "delete_notificationchannel",
        ],
    )


class Migration(migrations.Migration):
    dependencies = [("components", "0004_notifications")]

    operations = [migrations.RunPython(grant_roles, migrations.RunPython.noop)]
