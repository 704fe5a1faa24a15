"""The two roles: ``viewer`` reads everything, ``operator`` also changes things.

Roles are Django groups (made by a data migration). Each domain app grants its
models' permissions to the groups from its own migrations through ``grant``.
An operator is also a viewer, so whatever is granted to ``viewer`` is granted to
``operator`` too. API scopes follow the roles: see ``allowed_scopes``.
"""

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group

from apps.core.models import Scope

VIEWER = "viewer"
OPERATOR = "operator"
ROLES = (VIEWER, OPERATOR)
VIEW_CONSOLE = "core.view_console"

# A grant to a role also goes to the roles that include it.
_INCLUDED_IN = {VIEWER: (VIEWER, OPERATOR), OPERATOR: (OPERATOR,)}
# The API scope each role unlocks; ``admin`` is only ever a superuser's.
_ROLE_SCOPES = {VIEWER: Scope.READ.value, OPERATOR: Scope.WRITE.value}


def grant(apps: Any, group_name: str, app_label: str, codenames: list[str]) -> None:
    """Give ``group_name`` (and roles including it) permissions of ``app_label``."""
    from django.contrib.auth.management import create_permissions

    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    perms = permission_model.objects.filter(
        content_type__app_label=app_label, codename__in=codenames
    )
    missing = set(codenames) - set(perms.values_list("codename", flat=True))
    if missing:
        raise LookupError(f"unknown permissions for {app_label}: {sorted(missing)}")
    for name in _INCLUDED_IN.get(group_name, (group_name,)):
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.add(*perms)


# Set on a user object whose role groups were loaded with it (token auth), for the
# life of that object (one request): it saves a query per API call.
_ROLE_NAMES = "_opsconsole_role_names"


def remember_role_names(user: AbstractBaseUser, names: list[str]) -> None:
    """Record ``user``'s role group names, read in the query that loaded it."""
    setattr(user, _ROLE_NAMES, set(names))


def user_roles(user: AbstractBaseUser | AnonymousUser) -> list[str]:
    """The user's roles; an operator is also a viewer, a superuser is both."""
    if not user.is_authenticated or not user.is_active:
        return []
    if getattr(user, "is_superuser", False):
        return [VIEWER, OPERATOR]
    names = getattr(user, _ROLE_NAMES, None)
    if names is None:
        names = set(
            Group.objects.filter(user__pk=user.pk).values_list("name", flat=True)
        )
    if OPERATOR in names:
        return [VIEWER, OPERATOR]
    return [VIEWER] if VIEWER in names else []


def allowed_scopes(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The API scopes the user's roles allow: read (viewer), write (operator), admin."""
    scopes = {_ROLE_SCOPES[role] for role in user_roles(user)}
    if scopes and getattr(user, "is_superuser", False):
        scopes.add(Scope.ADMIN.value)
    return frozenset(scopes)


async def roles_of(user: AbstractBaseUser | AnonymousUser) -> list[str]:
    return await sync_to_async(user_roles)(user)
