"""``manage.py health``: every watched component's state, as ``/health`` sees it.

``--watch`` prints it again every ``--interval`` seconds until SIGINT/SIGTERM, which
end the command after the report being printed, with exit status 0.
"""

import signal
import threading
from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.components.selectors import HealthCheck, health_report
from apps.core.cli import add_format_argument, iso, render_rows

COLUMNS = ["slug", "kind", "state", "status", "latency_ms", "checked_at", "message"]


class Command(BaseCommand):
    help = "Show the health of the enabled, unpaused components."

    def add_arguments(self, parser: CommandParser) -> None:
        add_format_argument(parser)
        parser.add_argument(
            "--watch", action="store_true", help="print again until interrupted"
        )
        parser.add_argument(
            "--interval", type=_interval, default=5.0, help="seconds between reports"
        )

    def handle(
        self, *args: Any, output_format: str, watch: bool, interval: float, **_: Any
    ) -> None:
        if not watch:
            self._report(output_format)
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        while not stop.is_set():
            self._report(output_format)
            self.stdout.flush()
            stop.wait(interval)

    def _report(self, output_format: str) -> None:
        report = health_report(detailed=True)
        rows = [_row(check) for check in report.checks]
        self.stdout.write(
            render_rows(rows, columns=COLUMNS, output_format=output_format)
        )
        if output_format == "table":
            self.stdout.write(f"overall: {report.status}")


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 3600:
        raise ArgumentTypeError("the interval is 0.1 to 3600 seconds")
    return value


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
