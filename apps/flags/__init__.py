"""Feature flags. In-process API: ``is_enabled``, ``get_value``, ``evaluate``.

Evaluation reads this process's compiled snapshot only: no database, no Redis. Each
evaluation of an existing flag is counted in-process (``apps.flags.usage``).
"""

from collections.abc import Mapping
from typing import Any

from apps.flags.engine import ErrorCode, Evaluation, Reason
from apps.flags.snapshot import current
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
_NOT_FOUND = ErrorCode.FLAG_NOT_FOUND


def evaluate(key: str, ctx: Mapping[str, Any] | None = None) -> Evaluation:
    """The full answer for ``key``: value, variant, reason, error code."""
    result = current().evaluate(key, _EMPTY if ctx is None else ctx)
    # Unknown keys are not counted: callers must not grow the table at will.
    if result.error_code is not _NOT_FOUND:
        _counts[key] = _counts.get(key, 0) + 1
    return result


def is_enabled(
    key: str, ctx: Mapping[str, Any] | None = None, *, default: bool = False
) -> bool:
    """A boolean flag's value; ``default`` when it is missing, broken or not boolean."""
    value = evaluate(key, ctx).value
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
