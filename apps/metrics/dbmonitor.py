"""The DB query monitor: every query through Django's cursors, timed and fingerprinted.

An execute wrapper, added to each connection as it is created, times the query
(statements run on raw psycopg cursors, which it does not see, are timed by
``noted`` and, in pipeline mode, ``pipelined``) and notes it in this process:
its normalised fingerprint (literals and placeholders as ``?``, lists as
``(...)``), the recent and the slow ones (over
``OPSCONSOLE_DB_SLOW_QUERY_MS``) in small bounded deques, and per fingerprint a
count, the total time and a log-bucket latency sketch (apps.metrics.sketch) for
p95. The heartbeat thread moves what was noted to Redis every few seconds, in
the same pipeline as its report, so a query never waits on Redis: bounded lists
``<prefix>db:recent`` / ``db:slow`` and per-fingerprint hashes under ``db:``.
"""

import hashlib
import json
import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import psycopg
import redis
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg.abc import Params

from apps.metrics.sketch import LN_GAMMA, MIN_INDEXABLE, ZERO_KEY

RECENT_MAX = 500
SLOW_MAX = 200
FINGERPRINTS_MAX = 2000
SQL_MAX = 1000

_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_STRINGS = re.compile(r"'(?:[^']|'')*'")
_PARAMS = re.compile(r"%s|%\(\w+\)s|\$\d+")
_NUMBERS = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", re.I)
_LISTS = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_SPACE = re.compile(r"\s+")


@lru_cache(maxsize=4096)
def fingerprint(sql: str) -> tuple[str, str]:
    """The normalised text of ``sql`` and a short id for it."""
    text = _STRINGS.sub("?", _COMMENTS.sub(" ", sql))
    text = _NUMBERS.sub("?", _PARAMS.sub("?", text))
    text = _SPACE.sub(" ", _LISTS.sub("(...)", text)).strip()
    return text, hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class QueryNote:
    """One executed query as the recent and slow lists keep it."""

    at: float
    ms: float
    fingerprint: str
    sql: str


@dataclass(slots=True)
class _Stats:
    count: int = 0
    total_ms: float = 0.0
    sketch: Counter[str] = field(default_factory=Counter)


class Monitor:
    """This process's notes since the last flush."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: deque[QueryNote] = deque(maxlen=RECENT_MAX)
        self._slow: deque[QueryNote] = deque(maxlen=SLOW_MAX)
        self._stats: dict[tuple[str, str], _Stats] = {}

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.note(sql, (time.perf_counter() - started) * 1000)

    def note(self, sql: str, ms: float) -> None:
        key = fingerprint(sql)
        entry = QueryNote(time.time(), round(ms, 3), key[0], sql[:SQL_MAX])
        with self._lock:
            self._recent.append(entry)
            if ms >= settings.OPSCONSOLE_DB_SLOW_QUERY_MS:
                self._slow.append(entry)
            stats = self._stats.get(key)
            if stats is None and len(self._stats) < FINGERPRINTS_MAX:
                stats = self._stats[key] = _Stats()
            if stats is not None:
                stats.count += 1
                stats.total_ms += ms
                stats.sketch[_bucket(ms)] += 1

    def flush(self, pipe: "redis.client.Pipeline") -> None:
        """Queue this process's notes on ``pipe`` (the caller executes it)."""
        with self._lock:
            recent, slow, stats = list(self._recent), list(self._slow), self._stats
            self._recent.clear()
            self._slow.clear()
            self._stats = {}
        for name, notes, bound in (
            ("recent", recent, RECENT_MAX),
            ("slow", slow, SLOW_MAX),
        ):
            if notes:
                pipe.lpush(db_key(name), *(json.dumps(asdict(n)) for n in notes))
                pipe.ltrim(db_key(name), 0, bound - 1)
        for (text, ident), stat in stats.items():
            pipe.hsetnx(db_key("fingerprints"), ident, text)
            pipe.hincrby(db_key("count"), ident, stat.count)
            pipe.hincrbyfloat(db_key("total_ms"), ident, stat.total_ms)
            for bucket, count in stat.sketch.items():
                pipe.hincrby(db_key(f"sketch:{ident}"), bucket, count)


def _bucket(ms: float) -> str:
    if ms < MIN_INDEXABLE:
        return ZERO_KEY
    return str(math.ceil(math.log(ms) / LN_GAMMA))


def db_key(name: str) -> str:
    return f"{settings.OPSCONSOLE_REDIS_PREFIX}db:{name}"


MONITOR = Monitor()


@contextmanager
def noted(sql: str) -> Iterator[None]:
    """Note ``sql`` with the time the block takes: a statement on a raw psycopg
    cursor, or a whole COPY (``with noted(COPY_SQL), cursor.copy(COPY_SQL)``)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        MONITOR.note(sql, (time.perf_counter() - started) * 1000)


class Pipelined:
    """The statements of one psycopg pipeline, sent and fetched through it, each
    on a cursor with no other statement of the pipeline unread.

    A statement's own time cannot be told apart in pipeline mode. Each is noted
    from its send until this process sees its result read (psycopg reads results
    in order, when a send or a fetch finds them arrived, and sets the cursor's
    ``pgresult``), looked at after every send and fetch and at the pipeline's
    end. So the time holds the server's work on the statements queued before it
    and, when its result came while this process computed, that computing.
    """

    def __init__(self) -> None:
        self._sent: list[tuple[psycopg.Cursor[Any], str, float]] = []

    def execute(
        self,
        cursor: psycopg.Cursor[Any],
        sql: str,
        params: Params,
        *,
        binary: bool = False,
    ) -> None:
        started = time.perf_counter()
        try:
            cursor.execute(sql, params, binary=binary)
        finally:
            self._sent.append((cursor, sql, started))
        self._note_read()

    def fetchall(self, cursor: psycopg.Cursor[Any]) -> list[Any]:
        rows = cursor.fetchall()
        self._note_read()
        return rows

    def close(self) -> None:
        """Note the statements still unnoted: the pipeline has ended."""
        self._note(len(self._sent))

    def _note_read(self) -> None:
        # Results come in order: those sent before a read one were read too.
        read = [n for n, (on, _, _) in enumerate(self._sent) if on.pgresult is not None]
        if read:
            self._note(read[-1] + 1)

    def _note(self, count: int) -> None:
        now = time.perf_counter()
        for _, sql, started in self._sent[:count]:
            MONITOR.note(sql, (now - started) * 1000)
        del self._sent[:count]


@contextmanager
def pipelined(connection: psycopg.Connection[Any]) -> Iterator[Pipelined]:
    """``connection.pipeline()``, its statements noted (see ``Pipelined``)."""
    statements = Pipelined()
    try:
        with connection.pipeline():
            yield statements
    finally:
        statements.close()


def install(connection: BaseDatabaseWrapper, **_: Any) -> None:
    """``connection_created`` receiver: time every query on this connection."""
    if MONITOR not in connection.execute_wrappers:
        connection.execute_wrappers.append(MONITOR)
