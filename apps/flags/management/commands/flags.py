"""``manage.py flags list|show|set|toggle|evaluate|history|export|import``: flags from
the shell, audited as cli. ``export`` writes the whole flag set and its segments as
JSON; ``import`` reads such a file into another installation, validated as one set.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.cli import add_format_argument, iso, render_rows
from apps.core.exceptions import OpsError
from apps.core.models import AuditEvent
from apps.flags.engine import ErrorCode, Evaluation
from apps.flags.models import ChangeRequest, Flag, FlagVersion
from apps.flags.selectors import flag_get, flag_history, flag_list, flag_set_export
from apps.flags.services import (
    FlagChange,
    SetChange,
    flag_set_import,
    flag_toggle,
    flag_upsert,
)
from apps.flags.snapshot import build_snapshot
from apps.flags.specs import flag_spec

CLI = AuditEvent.Source.CLI

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
EVALUATION_COLUMNS = ["key", "value", "variant", "reason", "error_code", "error"]
IMPORT_COLUMNS = ["kind", "key", "action", "field", "before", "after"]


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
        _add_transfer_arguments(sub)

    def handle(self, *args: Any, **options: Any) -> None:
        handler: dict[str, Callable[..., None]] = {
            "list": self._list,
            "show": self._show,
            "set": self._set,
            "toggle": self._toggle,
            "evaluate": self._evaluate,
            "history": self._history,
            "export": self._export,
            "import": self._import,
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
            source=CLI,
        )
        self._report(flag, f"Switched {key} {state}")

    def _set(
        self, *, key: str, spec_file: str | None, enabled: str, reason: str, **_: Any
    ) -> None:
        if spec_file is None:
            change = flag_toggle(
                key=key, enabled=enabled == "on", actor=None, reason=reason, source=CLI
            )
        else:
            data = _read_object(spec_file)
            change = flag_upsert(
                key=key, data=data, actor=None, reason=reason, source=CLI
            )
        self._report(change, f"Set {key}")

    def _evaluate(
        self, *, key: str, context: str, output_format: str, **_: Any
    ) -> None:
        # The flags as PostgreSQL has them now, not a snapshot kept by this process.
        result = build_snapshot().evaluate(key, _context(context))
        if result.error_code is ErrorCode.FLAG_NOT_FOUND:
            raise CommandError(f"no flag {key!r}")
        self._render([_evaluation_row(result)], EVALUATION_COLUMNS, output_format)

    def _export(self, *, output: str | None, **_: Any) -> None:
        document = flag_set_export()
        text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
        if output is None:
            self.stdout.write(text)
            return
        try:
            Path(output).write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{output}: {exc.strerror}") from exc
        self.stdout.write(
            f"Exported {len(document['flags'])} flags and "
            f"{len(document['segments'])} segments to {output}."
        )

    def _import(
        self, *, file: str, dry_run: bool, reason: str, output_format: str, **_: Any
    ) -> None:
        changes = flag_set_import(
            document=_read_json(file),
            actor=None,
            reason=reason,
            source=CLI,
            dry_run=dry_run,
        )
        rows = [row for change in changes for row in _change_rows(change)]
        self._render(rows, IMPORT_COLUMNS, output_format)
        if output_format == "table":
            self.stdout.write(_import_summary(changes, dry_run=dry_run))

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


def _add_transfer_arguments(sub: Any) -> None:
    put = sub.add_parser("set", help="Create or change a flag, or switch it.")
    put.add_argument("key")
    what = put.add_mutually_exclusive_group(required=True)
    what.add_argument("--spec-file", help="JSON object of the flag's fields")
    what.add_argument("--enabled", choices=["on", "off"])
    put.add_argument("--reason", required=True, help="audited with the change")
    evaluate = sub.add_parser("evaluate", help="Evaluate a flag for a context.")
    evaluate.add_argument("key")
    evaluate.add_argument("--context", default="{}", help="JSON object")
    add_format_argument(evaluate)
    export = sub.add_parser("export", help="Every flag and segment as JSON.")
    export.add_argument("--output", help="write to this file, not stdout")
    load = sub.add_parser("import", help="Create or change flags from an export.")
    load.add_argument("file")
    load.add_argument("--dry-run", action="store_true", help="show, write nothing")
    load.add_argument("--reason", required=True, help="audited with each change")
    add_format_argument(load)


def _read_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: not valid JSON: {_where(exc)}") from exc


def _where(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    return "not UTF-8 text"


def _read_object(path: str) -> dict[str, Any]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise CommandError(f"{path}: must hold a JSON object of flag fields")
    return data


def _context(text: str) -> dict[str, Any]:
    try:
        context = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--context: not valid JSON: {_where(exc)}") from exc
    if not isinstance(context, dict):
        raise CommandError("--context: must be a JSON object")
    return context


def _evaluation_row(result: Evaluation) -> dict[str, str]:
    return {
        "key": result.key,
        "value": _text(result.value),
        "variant": result.variant or "",
        "reason": str(result.reason),
        "error_code": str(result.error_code or ""),
        "error": result.error_message,
    }


def _change_rows(change: SetChange) -> list[dict[str, str]]:
    """An import's change as rows: one per changed field; a creation is one row."""
    row = {"kind": change.kind, "key": change.key, "action": change.action}
    if change.action == "create":
        return [{**row, "field": "", "before": "", "after": ""}]
    return [
        {**row, "field": f.field, "before": _text(f.before), "after": _text(f.after)}
        for f in change.fields
    ]


def _import_summary(changes: list[SetChange], *, dry_run: bool) -> str:
    actions = [change.action for change in changes]
    made, changed, same = (actions.count(a) for a in ("create", "update", "unchanged"))
    if dry_run:
        return f"Dry run, nothing written: would create {made}, update {changed}; {same} unchanged."
    return f"Created {made}, updated {changed}; {same} unchanged."


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
