"""Metrics REST endpoints under /api/v1/metrics."""

from django.http import HttpRequest
from ninja import Router
from ninja.responses import Status

from apps.core.auth import require_scope
from apps.core.models import Scope
from apps.metrics.schemas import IngestIn, IngestOut
from apps.metrics.services import SampleInput, samples_ingest

router = Router(tags=["metrics"])


@router.post("/ingest", response={202: IngestOut})
def ingest(request: HttpRequest, payload: IngestIn) -> Status:
    """Queue a batch of samples for the persister (all or none; write scope)."""
    require_scope(request, Scope.WRITE)
    given = [SampleInput(s.name, s.value, s.tags, s.at) for s in payload.samples]
    return Status(202, IngestOut(accepted=samples_ingest(samples=given)))
