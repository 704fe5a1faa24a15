"""``manage.py breakers list|show|events|force-open|force-close|reset|disable``."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.breakers.selectors import BreakerStatus, breaker_events, breaker_statuses
from apps.breakers.services import breaker_act
from apps.core.cli import add_format_argument, iso, render_rows
from apps.core.exceptions import OpsError
from apps.core.models import AuditEvent

COLUMNS = [
    "name",
    "state",
    "calls",
    "failure_rate",
    "slow_rate",
    "source",
    "last_transition",
]
EVENT_COLUMNS = ["at", "from", "to", "origin", "actor", "reason"]
ACTIONS = ("force-open", "force-close", "reset", "disable")


class Command(BaseCommand):
    help = "List circuit breakers, their transitions, and force or reset them."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add_format_argument(sub.add_parser("list", help="Every breaker's state."))
        for name, text in (("show", "One breaker."), ("events", "Its transitions.")):
            one = sub.add_parser(name, help=text)
            one.add_argument("name")
            add_format_argument(one)
        for action in ACTIONS:
            act = sub.add_parser(action, help=f"{action} a breaker fleet-wide.")
            act.add_argument("name")
            act.add_argument("--reason", required=True, help="recorded in the audit")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] in ACTIONS:
                self._act(**options)
            elif options["action"] == "events":
                self._events(**options)
            else:
                self._list(**options)
        except OpsError as exc:
            raise CommandError(exc.message) from exc

    def _list(self, *, output_format: str, name: str | None = None, **_: Any) -> None:
        rows = [_row(status) for status in breaker_statuses(name=name)]
        self.stdout.write(
            render_rows(rows, columns=COLUMNS, output_format=output_format)
        )

    def _events(self, *, name: str, output_format: str, **_: Any) -> None:
        rows = [
            {
                "at": iso(event.at),
                "from": event.from_state,
                "to": event.to_state,
                "origin": event.origin,
                "actor": event.actor.get_username() if event.actor else "",
                "reason": event.reason,
            }
            for event in breaker_events(name=breaker_statuses(name=name)[0].view.name)
        ]
        self.stdout.write(
            render_rows(rows, columns=EVENT_COLUMNS, output_format=output_format)
        )

    def _act(self, *, action: str, name: str, reason: str, **_: Any) -> None:
        event = breaker_act(
            name=name,
            action=action.replace("-", "_"),
            actor=None,
            reason=reason,
            source=AuditEvent.Source.CLI,
        )
        self.stdout.write(f"{name}: {event.from_state} -> {event.to_state}.")


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}%"


def _row(status: BreakerStatus) -> dict[str, str]:
    view = status.view
    return {
        "name": view.name,
        "state": view.state,
        "calls": str(view.calls),
        "failure_rate": _rate(view.failure_rate),
        "slow_rate": _rate(view.slow_rate),
        "source": view.source,
        "last_transition": iso(status.last_transition_at),
    }
