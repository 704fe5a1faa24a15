from django.db import migrations

from apps.core.roles import OPERATOR, VIEWER, grant

# What viewers see; ``grant`` gives a viewer's permissions to operators as well.
VIEWER_PERMS = ["view_console", "view_auditevent", "view_apitoken"]
# Operators also make their own tokens and revoke anyone's (a leaked one, say).
OPERATOR_PERMS = ["add_apitoken", "change_apitoken"]


def create_roles(apps, schema_editor):
    grant(apps, VIEWER, "core", VIEWER_PERMS)
    grant(apps, OPERATOR, "core", OPERATOR_PERMS)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_auditevent_append_only"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    # Reversing keeps the groups: later apps' grants and users' memberships hang on them.
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
