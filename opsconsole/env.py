"""Strict parsing of settings from the environment (STYLE rule 9).

A value that does not parse is a start-up error naming the variable, never a silent
default. Every variable may also be given as ``NAME_FILE`` (a path whose contents are
the value), which is how container secrets arrive.
"""

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{name}_FILE: cannot read {file_name}: {exc.strerror}"
            ) from exc
    return os.environ.get(name)


def env_str(name: str, default: str | None = None) -> str | None:
    """The variable's text, or ``default`` when it is unset or empty."""
    value = _raw(name)
    return value if value else default


def env_bool(name: str, default: bool) -> bool:
    """A boolean; anything but a known yes/no word is an error."""
    value = _raw(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false)")


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int = 2**31) -> int:
    """An integer within ``[minimum, maximum]``."""
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if not minimum <= number <= maximum:
        raise ImproperlyConfigured(
            f"{name}={number} is out of range [{minimum}, {maximum}]"
        )
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


_PATTERN = re.compile(r"^[a-zA-Z0-9_.:*?]+$")


def env_rules(
    name: str, default: str, *, keys: tuple[str, ...]
) -> list[tuple[str, dict[str, int]]]:
    """Rules ``pattern=key:number,key:number`` separated by ``;``, in order, e.g.
    ``component.check.*=minute:2,hour:35``: a glob over metric names (``*``,
    ``?``), then positive whole numbers for some of ``keys``. An empty value
    means no rules."""
    value = _raw(name)
    text = default if value is None else value
    rules = []
    for rule in filter(None, (part.strip() for part in text.split(";"))):
        pattern, _, values = (piece.strip() for piece in rule.partition("="))
        if not _PATTERN.match(pattern) or not values:
            raise ImproperlyConfigured(
                f"{name}: {rule!r} is not pattern=key:number,... (pattern: letters,"
                " digits, _ . : and the wildcards * ?)"
            )
        numbers: dict[str, int] = {}
        for item in values.split(","):
            key, _, number = (piece.strip() for piece in item.partition(":"))
            if key not in keys or not number.isdigit() or int(number) < 1:
                raise ImproperlyConfigured(
                    f"{name}: {item.strip()!r} in {pattern!r} is not key:number"
                    f" with a key among {', '.join(keys)} and a number >= 1"
                )
            numbers[key] = int(number)
        rules.append((pattern, numbers))
    return rules


def env_url(name: str, *, schemes: tuple[str, ...]) -> str | None:
    """A URL whose scheme is one of ``schemes`` and that names a host."""
    value = env_str(name)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ImproperlyConfigured(
            f"{name}: scheme must be one of {', '.join(schemes)}, got {parts.scheme!r}"
        )
    if not parts.hostname and "host=" not in parts.query:
        raise ImproperlyConfigured(f"{name}: the URL names no host")
    try:
        parts.port  # noqa: B018 - parsing the port raises on garbage
    except ValueError:
        raise ImproperlyConfigured(f"{name}: the port is not a number") from None
    return value
