"""The account a developer logs in with after `make run`."""

import secrets

from django.contrib.auth.models import Group, User
from django.db import transaction

from apps.core.roles import OPERATOR

# `opsconsole.run` reads this line from demo_setup's output to show the password in
# its banner; keep the two in step.
GENERATED_PASSWORD_LINE = "Generated password for {username}: {password}"  # noqa: S105


@transaction.atomic
def demo_operator_ensure(
    *, username: str = "admin", password: str | None
) -> tuple[User, str | None]:
    """Make sure superuser ``username`` exists; return it and the password set, if any.

    A new user gets ``password`` or, without one, a random password that is returned
    so the caller can show it once. An existing user's password changes only when
    ``password`` is given.
    """
    user = User.objects.select_for_update().filter(username=username).first()
    if user is None:
        password = password or secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, password=password)
    elif password:
        user.set_password(password)
        user.save(update_fields=["password"])
    operator = Group.objects.filter(name=OPERATOR).first()
    if operator is not None:
        user.groups.add(operator)
    return user, password or None
