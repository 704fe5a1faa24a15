"""Every write of the metrics app: recording samples, rollups, retention."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings

from apps.core.exceptions import DependencyUnavailable, ValidationFailed
from apps.metrics import process
from apps.metrics.models import Resolution
from apps.metrics.partitions import partitions_create, partitions_drop_before
from apps.metrics.recording import checked_row
from apps.metrics.retention import rollups_expire
from apps.metrics.rollups import rollup_due, tags_backfill


@dataclass(frozen=True, slots=True)
class SampleInput:
    """One sample as a caller gives it (``at`` None means now)."""

    name: str
    value: float
    tags: Mapping[str, str] | None = None
    at: datetime | None = None


def samples_ingest(*, samples: Sequence[SampleInput]) -> int:
    """Queue a whole batch or none of it: ValidationFailed names each bad field
    (``samples.<i>.<field>``); DependencyUnavailable when the buffer lacks room."""
    checked, fields = [], {}
    for index, given in enumerate(samples):
        row, problems = checked_row(given.name, given.value, given.tags, given.at)
        fields.update({f"samples.{index}.{k}": v for k, v in problems.items()})
        checked.append(row)
    if fields:
        raise ValidationFailed(fields)
    buffer = process.buffer()
    if len(buffer) + len(checked) > buffer.bound:
        raise DependencyUnavailable(
            "The metrics buffer is full (the database is away?); retry later.",
            code="metrics_buffer_full",
        )
    return sum(buffer.append(row) for row in checked)


@dataclass(frozen=True, slots=True)
class RetentionResult:
    partitions_dropped: tuple[str, ...]
    rollups_deleted: dict[str, int]


def rollups_run(*, now: datetime) -> dict[str, int]:
    """Roll every due minute, then hour, then day; buckets rolled per resolution.

    A minute is closed once the persister has had two flush intervals (and 5 s)
    past its end to land its samples; later ones re-roll it.
    """
    interval = timedelta(milliseconds=settings.OPSCONSOLE_METRICS_FLUSH_INTERVAL_MS)
    grace = 2 * interval + timedelta(seconds=5)
    return {
        resolution.value: rollup_due(resolution=resolution, now=now, grace=grace)
        for resolution in (Resolution.MINUTE, Resolution.HOUR, Resolution.DAY)
    }


def rollups_backfill_tags(*, keys: Sequence[str] | None = None) -> dict[str, int]:
    """Per-tag rollups of ``keys`` (default: every configured key) for the buckets
    rolled before a key was configured; the rows written per resolution."""
    configured = settings.OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS
    chosen = list(configured if keys is None else keys)
    if not chosen or not set(chosen) <= set(configured):
        raise ValidationFailed(
            {
                "keys": [
                    f"Must be among OPSCONSOLE_METRICS_ROLLUP_TAG_KEYS: {configured}."
                ]
            }
        )
    return tags_backfill(keys=chosen)


def retention_apply(*, now: datetime) -> RetentionResult:
    """Drop raw day partitions past retention, delete rollups past theirs."""
    raw_days = settings.OPSCONSOLE_METRICS_RAW_RETENTION_DAYS
    dropped = partitions_drop_before(day=(now - timedelta(days=raw_days)).date())
    deleted = rollups_expire(now=now)
    return RetentionResult(partitions_dropped=tuple(dropped), rollups_deleted=deleted)


def partitions_prepare(*, today: date, days_ahead: int = 3) -> None:
    """Create the raw partitions of today and the next ``days_ahead`` days."""
    partitions_create(days=[today + timedelta(days=n) for n in range(days_ahead + 1)])
