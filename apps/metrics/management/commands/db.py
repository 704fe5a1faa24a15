"""``manage.py db recent|slow|stats|pool``: what the DB query monitor saw."""

from datetime import UTC, datetime
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.cli import add_format_argument, iso, render_rows
from apps.metrics.heartbeat import fleet_reports
from apps.metrics.selectors import db_queries, db_stats

QUERY_COLUMNS = ["at", "ms", "fingerprint"]
STATS_COLUMNS = ["fingerprint", "count", "total_ms", "mean_ms", "p95_ms"]
POOL_KEYS = [
    "pool_size",
    "pool_available",
    "requests_waiting",
    "requests_num",
    "requests_wait_ms",
    "connections_num",
    "connections_errors",
]
POOL_COLUMNS = ["process", "role", *POOL_KEYS]


class Command(BaseCommand):
    help = "Recent and slow queries, per-fingerprint statistics, connection pools."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for action, text in (
            ("recent", "The newest queries."),
            ("slow", "The newest slow queries."),
            ("stats", "Count, total, mean and p95 per fingerprint."),
            ("pool", "Each process's connection pool."),
        ):
            one = sub.add_parser(action, help=text)
            one.add_argument("--limit", type=int, default=50)
            add_format_argument(one)

    def handle(self, *args: Any, **options: Any) -> None:
        action, limit = options["action"], options["limit"]
        try:
            rows, columns = _rows(action, limit)
        except redis.RedisError as exc:
            raise CommandError(f"Redis is unreachable: {type(exc).__name__}") from exc
        output_format = options["output_format"]
        self.stdout.write(
            render_rows(rows, columns=columns, output_format=output_format)
        )


def _rows(action: str, limit: int) -> tuple[list[dict[str, str]], list[str]]:
    if action in ("recent", "slow"):
        notes = db_queries(which=action, limit=limit)
        return [_note_row(n.at, n.ms, n.fingerprint) for n in notes], QUERY_COLUMNS
    if action == "stats":
        rows = [
            dict(
                zip(
                    STATS_COLUMNS,
                    map(
                        _text, (s.fingerprint, s.count, s.total_ms, s.mean_ms, s.p95_ms)
                    ),
                    strict=True,
                )
            )
            for s in db_stats(limit=limit)
        ]
        return rows, STATS_COLUMNS
    pools = [(r.process, r.role, r.pool) for r in fleet_reports() if r.pool]
    rows = [
        dict(
            zip(
                POOL_COLUMNS,
                [p, role, *(_text(pool.get(k)) for k in POOL_KEYS)],
                strict=True,
            )
        )
        for p, role, pool in pools[:limit]
    ]
    return rows, POOL_COLUMNS


def _note_row(at: float, ms: float, text: str) -> dict[str, str]:
    return {
        "at": iso(datetime.fromtimestamp(at, UTC)),
        "ms": f"{ms:g}",
        "fingerprint": text,
    }


def _text(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)
