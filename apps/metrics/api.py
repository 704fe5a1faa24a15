"""Metrics REST endpoints under /api/v1/metrics."""

from django.http import HttpRequest
from ninja import Query, Router
from ninja.responses import Status

from apps.core.auth import require_scope
from apps.core.models import Scope
from apps.metrics.schemas import IngestIn, IngestOut, QueryFilter, QueryOut
from apps.metrics.selectors import metrics_query
from apps.metrics.series import tags_parse
from apps.metrics.services import SampleInput, samples_ingest

router = Router(tags=["metrics"])


@router.post("/ingest", response={202: IngestOut})
def ingest(request: HttpRequest, payload: IngestIn) -> Status:
    """Queue a batch of samples for the persister (all or none; write scope)."""
    require_scope(request, Scope.WRITE)
    given = [SampleInput(s.name, s.value, s.tags, s.at) for s in payload.samples]
    return Status(202, IngestOut(accepted=samples_ingest(samples=given)))


@router.get("/query", response=QueryOut)
def query(request: HttpRequest, filters: Query[QueryFilter]) -> QueryOut:
    """Per-step statistics from the coarsest rollup that serves the step (read scope)."""
    require_scope(request, Scope.READ)
    resolution, buckets = metrics_query(
        name=filters.name,
        tags=tags_parse(filters.tags),
        start=filters.start,
        end=filters.end,
        step=filters.step,
    )
    return QueryOut.model_validate(
        {
            "name": filters.name,
            "resolution": resolution,
            "step": filters.step,
            "buckets": buckets,
        }
    )
