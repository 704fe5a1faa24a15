"""Everything that carries one trace id, in time order (issue #8 item 5).

Each app registers a source in its ``ready()``: a function from a trace id to the
records of its own that carry it. The trace page and API merge them, so an operator
sees that a flag toggle caused these checks, this breaker to open and that heal.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from django.db import DatabaseError

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TraceItem:
    at: datetime
    kind: str
    summary: str
    url: str


# W3C trace ids: 32 lowercase hex digits.
TRACE_ID_PATTERN = r"^[0-9a-f]{32}$"

Source = Callable[[str], list[TraceItem]]

_sources: dict[str, Source] = {}


def register(name: str, source: Source) -> None:
    """Make ``source`` answer for the records called ``name`` (e.g. ``audit``)."""
    _sources[name] = source


def trace_items(*, trace_id: str) -> list[TraceItem]:
    """Every registered record carrying ``trace_id``, oldest first."""
    items: list[TraceItem] = []
    for name, source in sorted(_sources.items()):
        try:
            items.extend(source(trace_id))
        except DatabaseError:
            log.exception("trace.source_failed", source=name)
    return sorted(items, key=lambda item: item.at)
