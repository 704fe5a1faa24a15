"""Shapes of the metrics API."""

from datetime import datetime

from ninja import Field, Schema
from pydantic import AwareDatetime

from apps.metrics.validation import MAX_BATCH


class SampleIn(Schema):
    name: str = Field(..., max_length=200, examples=["checkout.latency_ms"])
    value: float
    tags: dict[str, str] = Field(default_factory=dict)
    at: AwareDatetime | None = Field(None, description="Default: when received.")


class IngestIn(Schema):
    samples: list[SampleIn] = Field(..., min_length=1, max_length=MAX_BATCH)


class IngestOut(Schema):
    accepted: int


class QueryFilter(Schema):
    name: str
    tags: str = Field("", description="k:v pairs, comma-separated; all must match")
    start: AwareDatetime = Field(..., alias="from")
    end: AwareDatetime = Field(..., alias="to")
    step: int = Field(..., ge=60, description="Seconds; a multiple of 60")


class BucketOut(Schema):
    start: datetime
    count: int
    sum: float
    min: float
    max: float
    avg: float
    p50: float | None
    p95: float | None
    p99: float | None


class QueryOut(Schema):
    name: str
    resolution: str
    step: int
    buckets: list[BucketOut]
