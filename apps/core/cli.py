"""Shared pieces of the management commands: ``--format table|json|csv`` output.

Every command that lists things renders rows of text through ``render_rows`` so the
three formats look alike across the console and parse back to the same rows.
"""

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime

from django.core.management.base import CommandParser

FORMATS = ("table", "json", "csv")


def add_format_argument(parser: CommandParser) -> None:
    """Add ``--format table|json|csv`` (stored as ``output_format``)."""
    parser.add_argument(
        "--format", dest="output_format", choices=FORMATS, default="table"
    )


def iso(moment: datetime | None) -> str:
    """A time as ISO 8601 to the second, or empty."""
    return moment.isoformat(timespec="seconds") if moment else ""


def render_rows(
    rows: Sequence[dict[str, str]], *, columns: Sequence[str], output_format: str
) -> str:
    """The rows as an aligned table, a JSON array or CSV with a header."""
    if output_format == "json":
        return json.dumps(list(rows), indent=2)
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    widths = {c: max([len(c), *(len(row[c]) for row in rows)]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(row[c].ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(line.rstrip() for line in lines)
