"""Feature flags. In-process API: ``is_enabled``, ``get_value``, ``evaluate``.

Evaluation reads this process's compiled snapshot only: no database, no Redis. Each
evaluation of an existing flag is counted in-process (``apps.flags.usage``).
"""

from collections.abc import Mapping
from typing import Any

from apps.flags import snapshot as _snapshots
from apps.flags.engine import ErrorCode, Evaluation, Reason
from apps.flags.engine.model import not_found
from apps.flags.usage import counts as _counts

__all__ = [
    "ErrorCode",
    "Evaluation",
    "Reason",
    "evaluate",
    "get_value",
    "is_enabled",
    "resolve",
]

_EMPTY: Mapping[str, Any] = {}

# evaluate() and is_enabled() are the hot path (benchmarks/flags_eval.py): one dict
# lookup finds the flag's compiled runner, one dict update counts it. Unknown keys
# are not counted: callers must not grow the table at will.


def evaluate(key: str, ctx: Mapping[str, Any] | None = None) -> Evaluation:
    """The full answer for ``key``: value, variant, reason, error code."""
    snapshot = _snapshots.cache.snapshot
    if snapshot is None:
        snapshot = _snapshots.current()
    run = snapshot.runners.get(key)
    if run is None:
        return not_found(key)
    try:
        _counts[key] += 1
    except KeyError:
        _counts[key] = 1
    return run(_EMPTY if ctx is None else ctx)


def is_enabled(
    key: str, ctx: Mapping[str, Any] | None = None, *, default: bool = False
) -> bool:
    """A boolean flag's value; ``default`` when it is missing, broken or not boolean."""
    snapshot = _snapshots.cache.snapshot
    if snapshot is None:
        snapshot = _snapshots.current()
    run = snapshot.runners.get(key)
    if run is None:
        return default
    try:
        _counts[key] += 1
    except KeyError:
        _counts[key] = 1
    value = run(_EMPTY if ctx is None else ctx).value
    return value if value is True or value is False else default


def get_value(key: str, default: Any, ctx: Mapping[str, Any] | None = None) -> Any:
    """The flag's value, or ``default`` on any error or when its type differs."""
    return resolve(key, default, ctx).value


def resolve(key: str, default: Any, ctx: Mapping[str, Any] | None = None) -> Evaluation:
    """Like ``evaluate``, but typed by ``default``: errors serve ``default``."""
    result = evaluate(key, ctx)
    if result.failed:
        return Evaluation(
            key, default, None, Reason.ERROR, result.error_code, result.error_message
        )
    if not _same_kind(result.value, default):
        return Evaluation(
            key,
            default,
            None,
            Reason.ERROR,
            ErrorCode.TYPE_MISMATCH,
            f"the flag serves {type(result.value).__name__}, not {type(default).__name__}",
        )
    return result


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    if isinstance(default, str):
        return isinstance(value, str)
    return isinstance(value, dict | list) or value is None
