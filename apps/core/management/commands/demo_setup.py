from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.core.demo import GENERATED_PASSWORD_LINE, demo_operator_ensure
from opsconsole.env import env_str

PASSWORD_VARIABLE = "OPSCONSOLE_ADMIN_PASSWORD"  # noqa: S105 - a name, not a secret


class Command(BaseCommand):
    help = (
        "Make sure the demo superuser exists (an operator). Its password comes from "
        f"{PASSWORD_VARIABLE}; a new user without one gets a random password, "
        "printed once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        given = env_str(PASSWORD_VARIABLE)
        user, password = demo_operator_ensure(username=username, password=given)
        if password is None:
            return
        if given:
            self.stdout.write(
                f"Password for {user.username} set from {PASSWORD_VARIABLE}"
            )
        else:
            line = GENERATED_PASSWORD_LINE.format(
                username=user.username, password=password
            )
            self.stdout.write(line)
