"""Series identity: a name plus tags with sorted keys, hashed for the unique key."""

import hashlib
import json
from collections.abc import Mapping

Tags = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Tags]


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
