"""``manage.py checknow <slug>``: run a component's check now, on a worker."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.components.services import component_check_now
from apps.core.cli import iso
from apps.core.exceptions import OpsError
from apps.core.models import AuditEvent


class Command(BaseCommand):
    help = "Ask a worker to check the component now, outside its schedule."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, slug: str, **options: Any) -> None:
        try:
            claimed = component_check_now(
                slug=slug, actor=None, source=AuditEvent.Source.CLI
            )
        except OpsError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Check of {slug} requested; results by {iso(claimed.claimed_until)}."
        )
