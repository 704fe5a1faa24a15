"""The console's own switches (issue #4 item 12), protected so a flip needs a reason."""

from django.db import migrations
from django.utils import timezone

# key, name, enabled, requires, conflicts
SWITCHES = [
    ("opsconsole.checks.enabled", "Health checks run", True, [], []),
    (
        "opsconsole.healing.enabled",
        "Healing actions run",
        True,
        [{"flag": "opsconsole.checks.enabled", "variants": ["on"]}],
        [],
    ),
    ("opsconsole.notifications.enabled", "Notifications are sent", True, [], []),
    ("opsconsole.live.enabled", "The live dashboard streams", True, [], []),
    (
        "opsconsole.maintenance",
        "Maintenance mode",
        False,
        [],
        ["opsconsole.healing.enabled"],
    ),
]


def create_switches(apps, schema_editor):
    flag_model = apps.get_model("flags", "Flag")
    version_model = apps.get_model("flags", "FlagVersion")
    now = timezone.now()
    for key, name, enabled, requires, conflicts in SWITCHES:
        spec = {
            "key": key,
            "name": name,
            "description": "",
            "type": "boolean",
            "variants": {"on": True, "off": False},
            "json_schema": None,
            "enabled": enabled,
            "default_variant": "on",
            "off_variant": "off",
            "rules": [],
            "requires": requires,
            "conflicts": conflicts,
            "tags": ["opsconsole"],
            "owner": "opsconsole",
            "protected": True,
            "requires_approval": False,
            "expires_at": None,
            "archived": False,
            "version": 1,
        }
        flag, created = flag_model.objects.get_or_create(
            key=key,
            defaults={
                "name": name,
                "type": "boolean",
                "variants": {"on": True, "off": False},
                "enabled": enabled,
                "default_variant": "on",
                "off_variant": "off",
                "requires": requires,
                "conflicts": conflicts,
                "tags": ["opsconsole"],
                "owner": "opsconsole",
                "protected": True,
                "created_at": now,
                "updated_at": now,
            },
        )
        if created:
            version_model.objects.create(
                flag=flag,
                version=1,
                snapshot=spec,
                reason="created by migration",
                created_at=now,
            )


def delete_switches(apps, schema_editor):
    apps.get_model("flags", "Flag").objects.filter(
        key__in=[key for key, *_ in SWITCHES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("flags", "0002_roles")]

    operations = [migrations.RunPython(create_switches, delete_switches)]
