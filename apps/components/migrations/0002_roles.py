from django.db import migrations

from apps.core.roles import OPERATOR, VIEWER, grant

_MODELS = ["component", "componentstate", "healthresult", "statechange"]


def grant_roles(apps, schema_editor):
    grant(
        apps,
        VIEWER,
        "components",
        [f"view_{m}" for m in [*_MODELS, "maintenancewindow"]],
    )
    grant(
        apps,
        OPERATOR,
        "components",
        [
            "add_component",
            "change_component",
            "add_maintenancewindow",
            "change_maintenancewindow",
            "delete_maintenancewindow",
        ],
    )


class Migration(migrations.Migration):
    dependencies = [
        ("components", "0001_initial"),
        ("core", "0003_roles"),
    ]

    operations = [migrations.RunPython(grant_roles, migrations.RunPython.noop)]
