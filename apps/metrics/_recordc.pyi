from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from typing import Any

from apps.metrics.buffer import Buffer

def record(
    name: str,
    value: float,
    tags: Mapping[str, str] | None = None,
    at: datetime | None = None,
) -> None: ...
def bind(
    known: dict[Hashable, int],
    checked: Callable[[str, float, Mapping[str, str] | None, datetime | None], None],
    namespace: dict[str, Any],
    start: Callable[[], Buffer],
    /,
) -> None: ...
