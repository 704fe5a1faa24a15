"""Small factories for test data: plain functions with defaults you can override."""

import itertools
from datetime import datetime

from django.contrib.auth.models import Group, User

from apps.core.models import ApiToken, AuditEvent
from apps.core.services import token_create

_numbers = itertools.count(1)


def make_user(
    *,
    username: str | None = None,
    role: str | None = None,
    superuser: bool = False,
    staff: bool = True,
    active: bool = True,
    password: str | None = None,
) -> User:
    """A user, in the group of ``role`` (made by migration 0003) when given.

    Without ``password`` the password is unusable: tests sign in with
    ``force_login``, and skipping the hash keeps them fast.
    """
    user = User.objects.create_user(
        username=username or f"user{next(_numbers)}",
        password=password,
        is_staff=staff or superuser,
        is_superuser=superuser,
        is_active=active,
    )
    if role is not None:
        user.groups.add(Group.objects.get(name=role))
    return user


def make_token(
    *,
    user: User | None = None,
    scopes: tuple[str, ...] = ("read",),
    name: str = "test token",
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A token made through ``token_create`` (so the format is real), with its secret."""
    owner = user or make_user(role="viewer")
    return token_create(
        user=owner,
        name=name,
        scopes=list(scopes),
        expires_at=expires_at,
        actor=None,
        source=AuditEvent.Source.SYSTEM,
    )


def bearer(raw: str) -> dict[str, str]:
    """Request headers that authenticate with the token ``raw``."""
    return {"Authorization": f"Bearer {raw}"}
