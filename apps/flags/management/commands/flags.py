"""``manage.py flags list|show|toggle|history``: flags from the shell (audited as cli)."""

import json
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.cli import add_format_argument, iso, render_rows
from apps.core.exceptions import OpsError
from apps.core.models import AuditEvent
from apps.flags.models import ChangeRequest, Flag, FlagVersion
from apps.flags.selectors import flag_get, flag_history, flag_list
from apps.flags.services import FlagChange, flag_toggle
from apps.flags.specs import flag_spec

LIST_COLUMNS = [
    "key",
    "name",
    "type",
    "state",
    "tags",
    "owner",
    "protected",
    "expires_at",
    "version",
    "updated_at",
]
HISTORY_COLUMNS = ["version", "created_at", "actor", "enabled", "reason"]


class Command(BaseCommand):
    help = "List, show, switch and trace feature flags."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="Flags by key.")
        listing.add_argument("--tag", default="", help="only flags with this tag")
        listing.add_argument("--include-archived", action="store_true")
        add_format_argument(listing)
        show = sub.add_parser("show", help="Every field of one flag.")
        show.add_argument("key")
        add_format_argument(show)
        toggle = sub.add_parser("toggle", help="Switch a flag on or off.")
        toggle.add_argument("key")
        toggle.add_argument("state", choices=["on", "off"])
        toggle.add_argument("--reason", default="", help="required for protected flags")
        history = sub.add_parser(
            "history", help="The versions of a flag, newest first."
        )
        history.add_argument("key")
        add_format_argument(history)

    def handle(self, *args: Any, **options: Any) -> None:
        handler: dict[str, Callable[..., None]] = {
            "list": self._list,
            "show": self._show,
            "toggle": self._toggle,
            "history": self._history,
        }
        try:
            handler[options["action"]](**options)
        except OpsError as exc:
            raise CommandError(exc.message) from exc

    def _list(
        self, *, tag: str, include_archived: bool, output_format: str, **_: Any
    ) -> None:
        rows = [
            _row(flag) for flag in flag_list(include_archived=include_archived, tag=tag)
        ]
        self._render(rows, LIST_COLUMNS, output_format)

    def _show(self, *, key: str, output_format: str, **_: Any) -> None:
        spec = flag_spec(flag_get(key=key))
        rows = [{"field": name, "value": _text(value)} for name, value in spec.items()]
        self._render(rows, ["field", "value"], output_format)

    def _toggle(self, *, key: str, state: str, reason: str, **_: Any) -> None:
        flag = flag_toggle(
            key=key,
            enabled=state == "on",
            actor=None,
            reason=reason,
            source=AuditEvent.Source.CLI,
        )
        self._report(flag, f"Switched {key} {state}")

    def _history(self, *, key: str, output_format: str, **_: Any) -> None:
        rows = [
            _version_row(version) for version in flag_history(key=flag_get(key=key).key)
        ]
        self._render(rows, HISTORY_COLUMNS, output_format)

    def _report(self, change: FlagChange, done: str) -> None:
        if isinstance(change, ChangeRequest):
            self.stdout.write(
                f"{change.flag.key} requires approval: opened change request "
                f"#{change.pk}."
            )
        else:
            self.stdout.write(f"{done} (version {change.version}).")

    def _render(
        self, rows: list[dict[str, str]], columns: list[str], output_format: str
    ) -> None:
        self.stdout.write(
            render_rows(rows, columns=columns, output_format=output_format)
        )


def _text(value: Any) -> str:
    """A field's value as one line: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _row(flag: Flag) -> dict[str, str]:
    state = "archived" if flag.archived else ("on" if flag.enabled else "off")
    return {
        "key": flag.key,
        "name": flag.name,
        "type": flag.type,
        "state": state,
        "tags": ",".join(flag.tags),
        "owner": flag.owner,
        "protected": "yes" if flag.protected else "no",
        "expires_at": iso(flag.expires_at),
        "version": str(flag.version),
        "updated_at": iso(flag.updated_at),
    }


def _version_row(version: FlagVersion) -> dict[str, str]:
    return {
        "version": str(version.version),
        "created_at": iso(version.created_at),
        "actor": version.actor.get_username() if version.actor else "",
        "enabled": "on" if version.snapshot.get("enabled") else "off",
        "reason": version.reason,
    }
