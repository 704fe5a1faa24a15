"""Series identity: a name plus tags with sorted keys, hashed for the unique key.

A buffered sample carries its series as one interned ``str`` (``series_of``): the
name and tags as compact JSON. A str, unlike an object of our own class, is not
tracked by the garbage collector, so a ``(series, at_us, value)`` row holds only
untracked values and CPython untracks the row at its first collection; a full
buffer then costs the collector nothing (tracked rows made every full collection
walk the whole buffer: about half the CPU of a busy ingest). The str caches its
hash, so the writer's id cache is a plain dict lookup per sample.
"""

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import NewType

Tags = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Tags]
# ``json.dumps([name, [[key, value], ...]])`` with the tags sorted.
Series = NewType("Series", str)
INTERNED_MAX = 100_000

# Dict get and set are atomic under the GIL; clearing only stops sharing (equal
# strs stand for one series wherever they were made).
_interned: dict[SeriesKey, Series] = {}


def series_of(name: str, tags: Tags) -> Series:
    """The process's Series for ``name`` and sorted ``tags`` (no validation)."""
    key = (name, tags)
    series = _interned.get(key)
    if series is None:
        if len(_interned) >= INTERNED_MAX:
            _interned.clear()
        text = Series(json.dumps([name, tags], separators=(",", ":")))
        series = _interned.setdefault(key, text)
    return series


@lru_cache(maxsize=4096)
def series_parts(series: Series) -> SeriesKey:
    """The name and sorted tags of ``series``."""
    name, tags = json.loads(series)
    return name, tuple((key, value) for key, value in tags)


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
