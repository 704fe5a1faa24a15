"""Series identity: a name plus tags with sorted keys, hashed for the unique key.

A series is one interned ``str`` (``series_of``): the name and tags as compact
JSON; its hash is cached, so the writer's id cache is a plain dict lookup.

The buffer holds samples as three floats each (see ``buffer``), the series as its
number in this process's registry (``series_index``): a number in a float array
is no object at all, so a full buffer costs the garbage collector nothing and
the writer maps a whole batch to database ids with array arithmetic. Numbers are
``generation << 32 | position``. When a generation holds ``REGISTRY_MAX`` series
(tags of unbounded cardinality) the next one starts and the one before it stays
readable, so samples buffered before the switch still resolve; a sample older
than two switches (twice REGISTRY_MAX new series while it waited) no longer does
and is counted as dropped.
"""

import hashlib
import json
import threading
from collections.abc import Hashable, Mapping
from functools import lru_cache
from typing import NewType

import numpy as np
import numpy.typing as npt

Tags = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Tags]
# ``json.dumps([name, [[key, value], ...]])`` with the tags sorted.
Series = NewType("Series", str)
INTERNED_MAX = 100_000

# Dict get and set are atomic under the GIL; clearing only stops sharing (equal
# strs stand for one series wherever they were made).
_interned: dict[SeriesKey, Series] = {}

REGISTRY_MAX = 1_000_000
GENERATION_SHIFT = 32
POSITION_MASK = (1 << GENERATION_SHIFT) - 1


class SeriesRegistry:
    """Series ↔ number; see the module docstring. Registering takes a lock,
    looking a known series up does not (dict get is atomic under the GIL)."""

    def __init__(self, *, max_size: int = REGISTRY_MAX) -> None:
        self.max_size = max_size
        # record()'s cache: (name, *tag items as given) → number, name alone
        # without tags. Cleared (never replaced) with each new generation.
        self.known: dict[Hashable, int] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._numbers: dict[Series, int] = {}
        self._current: list[Series] = []
        self._previous: list[Series] = []

    @property
    def generation(self) -> int:
        """The generation new series are numbered in."""
        return self._generation

    def index(self, series: Series) -> int:
        """``series``' number, registered on first use."""
        number = self._numbers.get(series)
        if number is None:
            with self._lock:
                number = self._numbers.get(series)
                if number is None:
                    number = self._register(series)
        return number

    def _register(self, series: Series) -> int:
        if len(self._current) >= self.max_size:
            self._previous, self._current = self._current, []
            self._numbers = {}
            self._generation += 1
            self.known.clear()
        number = self._generation << GENERATION_SHIFT | len(self._current)
        self._current.append(series)
        self._numbers[series] = number
        return number

    def lookup(
        self, numbers: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.bool_], list[Series], npt.NDArray[np.int64]]:
        """Which ``numbers`` still resolve (a generation before the previous one
        does not), the distinct series of those, and each one's position among
        them.

        Array arithmetic per batch, not a lookup per sample: a count per
        registry position when the batch is larger than the registry, else a
        sort."""
        with self._lock:
            generation = self._generation
            current, previous = self._current, self._previous
            before = len(previous)
            size = before + len(current)
        generations = numbers >> GENERATION_SHIFT
        resolves = (generations == generation) | (generations == generation - 1)
        # One position space: the previous generation's, then the current one's.
        flat = (numbers & POSITION_MASK) + np.where(
            generations == generation, before, 0
        )
        flat = flat[resolves]
        if len(flat) >= size:
            present = np.flatnonzero(np.bincount(flat, minlength=1))
            slot = np.zeros(size or 1, dtype=np.int64)
            slot[present] = np.arange(len(present))
            positions = slot[flat]
        else:
            found = np.unique(flat, return_inverse=True)
            present, positions = found[0], found[1]
        distinct = [
            previous[p] if p < before else current[p - before] for p in present.tolist()
        ]
        return resolves, distinct, positions


# This process's registry: the buffer's numbers and record()'s cache.
registry = SeriesRegistry()
known = registry.known


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
