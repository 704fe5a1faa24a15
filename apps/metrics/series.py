"""Series identity: a name plus tags with sorted keys, hashed for the unique key.

A ``Series`` object stands for one identity in this process: ``series_of`` interns
them, so a sample carries a reference instead of its name and tags, and the writer
caches database ids by object identity (no tuple hashing per sample).
"""

import hashlib
import json
from collections.abc import Mapping

Tags = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Tags]
INTERNED_MAX = 100_000


class Series:
    """One series (name + sorted tags); compared and hashed by identity."""

    __slots__ = ("name", "tags")

    def __init__(self, name: str, tags: Tags) -> None:
        self.name = name
        self.tags = tags

    def __repr__(self) -> str:
        return f"Series({self.name!r}, {self.tags!r})"


# Dict get and set are atomic under the GIL; clearing only stops sharing.
_interned: dict[SeriesKey, Series] = {}


def series_of(name: str, tags: Tags) -> Series:
    """The process's Series for ``name`` and sorted ``tags`` (no validation)."""
    key = (name, tags)
    series = _interned.get(key)
    if series is None:
        if len(_interned) >= INTERNED_MAX:
            _interned.clear()
        series = _interned.setdefault(key, Series(name, tags))
    return series


def tags_tuple(tags: Mapping[str, str] | None) -> Tags:
    """Tags as sorted (key, value) pairs, the form samples carry."""
    return tuple(sorted((str(k), str(v)) for k, v in tags.items())) if tags else ()


def tags_parse(text: str) -> dict[str, str]:
    """``"env:prod,host:a"`` → ``{"env": "prod", "host": "a"}`` (pairs without ``:``
    are ignored): the tag filter of the query API and CLI."""
    return dict(pair.split(":", 1) for pair in text.split(",") if ":" in pair)


def canonical_tags(tags: Tags) -> str:
    """The tags as compact JSON with sorted keys: one text per tag set."""
    return json.dumps(dict(tags), sort_keys=True, separators=(",", ":"))


def series_hash(tags: Tags) -> str:
    """sha1 hex of the canonical tags: the short half of a series' unique key."""
    return hashlib.sha1(
        canonical_tags(tags).encode(), usedforsecurity=False
    ).hexdigest()
