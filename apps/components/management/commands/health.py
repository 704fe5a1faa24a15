"""``manage.py health``: every watched component's state, as ``/health`` sees it."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.components.selectors import HealthCheck, health_report
from apps.core.cli import add_format_argument, iso, render_rows

COLUMNS = ["slug", "kind", "state", "status", "latency_ms", "checked_at", "message"]


class Command(BaseCommand):
    help = "Show the health of the enabled, unpaused components."

    def add_arguments(self, parser: CommandParser) -> None:
        add_format_argument(parser)

    def handle(self, *args: Any, output_format: str, **options: Any) -> None:
        report = health_report(detailed=True)
        rows = [_row(check) for check in report.checks]
        self.stdout.write(
            render_rows(rows, columns=COLUMNS, output_format=output_format)
        )
        if output_format == "table":
            self.stdout.write(f"overall: {report.status}")


def _row(check: HealthCheck) -> dict[str, str]:
    latency = "" if check.latency_ms is None else f"{check.latency_ms:.1f}"
    return {
        "slug": check.slug,
        "kind": check.kind,
        "state": check.state,
        "status": check.status,
        "latency_ms": latency,
        "checked_at": iso(check.checked_at),
        "message": check.message.splitlines()[0] if check.message else "",
    }
