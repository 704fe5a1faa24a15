"""Metrics (flow 5): ``record()`` in-process; see apps.metrics.services for the rest."""

from datetime import datetime

__all__ = ["record"]


def record(
    name: str,
    value: float,
    tags: dict[str, str] | None = None,
    at: datetime | None = None,
) -> None:
    """Queue one sample for the persister; never blocks on I/O.

    Raises ValidationFailed for a bad name, tags, value or time; a sample refused
    because the buffer is full is counted (see /metrics), not raised.
    """
    from apps.metrics.services import sample_record

    sample_record(name=name, value=value, tags=tags, at=at)
