"""``manage.py metrics query NAME --from --to --step [--tags]``, ``metrics status``
and ``metrics backfill-tags [--keys k,k]``."""

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from apps.core.cli import add_format_argument, iso, render_rows
from apps.core.exceptions import OpsError
from apps.metrics.exposition import DROP_REASONS
from apps.metrics.heartbeat import ProcessReport, fleet_reports
from apps.metrics.selectors import Bucket, metrics_query
from apps.metrics.series import tags_parse
from apps.metrics.services import rollups_backfill_tags

QUERY_COLUMNS = ["start", "count", "sum", "min", "max", "avg", "p50", "p95", "p99"]
STATUS_COLUMNS = [
    "process",
    "role",
    "reported_at",
    "buffered",
    "recorded",
    "flushed",
    "spilled",
    "spill_bytes",
    "dropped",
    "database_away",
]
BACKFILL_COLUMNS = ["resolution", "rows"]
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Command(BaseCommand):
    help = (
        "Query metric rollups, show every process's persister, or write the per-tag "
        "rollups of a newly configured tag key for the buckets already rolled."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        query = sub.add_parser("query", help="Per-step statistics of one metric.")
        query.add_argument("name")
        query.add_argument("--from", dest="start", type=_moment, required=True)
        query.add_argument("--to", dest="end", type=_moment, default=None)
        query.add_argument("--step", type=_seconds, default=60, help="60, 5m, 1h …")
        query.add_argument("--tags", default="", help="k:v,k:v")
        add_format_argument(query)
        add_format_argument(sub.add_parser("status", help="Buffer, spill, drops."))
        backfill = sub.add_parser(
            "backfill-tags", help="Per-tag rollups of past buckets."
        )
        backfill.add_argument(
            "--keys", default="", help="k,k (default: every configured key)"
        )
        add_format_argument(backfill)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "query":
                rows, columns = self._query(**options), QUERY_COLUMNS
            elif options["action"] == "backfill-tags":
                rows, columns = _backfill(options["keys"]), BACKFILL_COLUMNS
            else:
                rows, columns = (
                    [_status_row(r) for r in fleet_reports()],
                    STATUS_COLUMNS,
                )
        except OpsError as exc:
            raise CommandError(exc.message) from exc
        output = render_rows(
            rows, columns=columns, output_format=options["output_format"]
        )
        self.stdout.write(output)

    def _query(
        self,
        *,
        name: str,
        start: datetime,
        end: datetime | None,
        step: int,
        tags: str,
        **_: Any,
    ) -> list[dict[str, str]]:
        _resolution, buckets = metrics_query(
            name=name,
            tags=tags_parse(tags),
            start=start,
            end=end or datetime.now(UTC),
            step=step,
        )
        return [_bucket_row(bucket) for bucket in buckets]


def _backfill(keys: str) -> list[dict[str, str]]:
    chosen = [key.strip() for key in keys.split(",") if key.strip()] or None
    written = rollups_backfill_tags(keys=chosen)
    return [{"resolution": r, "rows": str(n)} for r, n in written.items()]


def _bucket_row(bucket: Bucket) -> dict[str, str]:
    numbers = (bucket.sum, bucket.min, bucket.max, bucket.avg)
    quantiles = (bucket.p50, bucket.p95, bucket.p99)
    return dict(
        zip(
            QUERY_COLUMNS,
            [iso(bucket.start), str(bucket.count)]
            + [f"{n:g}" for n in numbers]
            + ["" if q is None else f"{q:g}" for q in quantiles],
            strict=True,
        )
    )


def _status_row(report: ProcessReport) -> dict[str, str]:
    stats = report.persister or {}
    dropped = sum(stats.get(f"dropped_{reason}", 0) for reason in DROP_REASONS)
    reported = iso(datetime.fromtimestamp(report.at, UTC))
    values = [report.process, report.role, reported]
    values += [str(stats.get(key, "")) for key in STATUS_COLUMNS[3:8]]
    values += [str(dropped), str(stats.get("database_away", ""))]
    return dict(zip(STATUS_COLUMNS, values, strict=True))


def _moment(text: str) -> datetime:
    moment = parse_datetime(text)
    if moment is None:
        raise ValueError(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _seconds(text: str) -> int:
    unit = text[-1] if text[-1:] in UNITS else "s"
    return int(text.rstrip("smhd")) * UNITS[unit]
