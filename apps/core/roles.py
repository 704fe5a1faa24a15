"""The two roles: ``viewer`` reads everything, ``operator`` also changes things.

Roles are Django groups (made by a data migration). Each domain app grants its
models' permissions to the groups from its own migrations through ``grant``.
"""

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

VIEWER = "viewer"
OPERATOR = "operator"
VIEW_CONSOLE = "core.view_console"


def grant(apps: Any, group_name: str, app_label: str, codenames: list[str]) -> None:
    """Give ``group_name`` the named permissions of ``app_label`` (for data migrations)."""
    from django.contrib.auth.management import create_permissions

    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.get_or_create(name=group_name)
    perms = permission_model.objects.filter(
        content_type__app_label=app_label, codename__in=codenames
    )
    missing = set(codenames) - set(perms.values_list("codename", flat=True))
    if missing:
        raise LookupError(f"unknown permissions for {app_label}: {sorted(missing)}")
    group.permissions.add(*perms)


def user_roles(user: AbstractBaseUser | AnonymousUser) -> list[str]:
    """The user's roles; a superuser is an operator whatever the groups say."""
    if not user.is_authenticated or not user.is_active:
        return []
    if getattr(user, "is_superuser", False):
        return [VIEWER, OPERATOR]
    names = set(user.groups.values_list("name", flat=True))  # type: ignore[union-attr]
    return [role for role in (VIEWER, OPERATOR) if role in names]


async def roles_of(user: AbstractBaseUser | AnonymousUser) -> list[str]:
    return await sync_to_async(user_roles)(user)
