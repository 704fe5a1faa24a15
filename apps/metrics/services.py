"""Every write of the metrics app: recording samples, rollups, retention."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils import timezone

from apps.core.exceptions import DependencyUnavailable, ValidationFailed
from apps.metrics import process
from apps.metrics.buffer import Sample
from apps.metrics.series import tags_tuple
from apps.metrics.validation import sample_problems


@dataclass(frozen=True, slots=True)
class SampleInput:
    """One sample as a caller gives it (``at`` None means now)."""

    name: str
    value: float
    tags: Mapping[str, str] | None = None
    at: datetime | None = None


def sample_record(
    *, name: str, value: float, tags: Mapping[str, str] | None, at: datetime | None
) -> bool:
    """Validate and queue one sample; False when the full buffer refused it."""
    sample, problems = _checked(SampleInput(name, value, tags, at))
    if problems:
        raise ValidationFailed(problems)
    return process.buffer().append(sample)


def samples_ingest(*, samples: Sequence[SampleInput]) -> int:
    """Queue a whole batch or none of it: ValidationFailed names each bad field
    (``samples.<i>.<field>``); DependencyUnavailable when the buffer lacks room."""
    checked, fields = [], {}
    for index, given in enumerate(samples):
        sample, problems = _checked(given)
        fields.update({f"samples.{index}.{k}": v for k, v in problems.items()})
        checked.append(sample)
    if fields:
        raise ValidationFailed(fields)
    buffer = process.buffer()
    if len(buffer) + len(checked) > buffer.bound:
        raise DependencyUnavailable(
            "The metrics buffer is full (the database is away?); retry later.",
            code="metrics_buffer_full",
        )
    return sum(buffer.append(sample) for sample in checked)


def _checked(given: SampleInput) -> tuple[Sample, dict[str, list[str]]]:
    at = timezone.now() if given.at is None else given.at
    tags = {str(k): str(v) for k, v in (given.tags or {}).items()}
    value = float(given.value)
    problems = sample_problems(given.name, value, tags, at)
    utc = at.astimezone(UTC) if at.tzinfo is not None else at
    return Sample(given.name, tags_tuple(tags), utc, value), problems
