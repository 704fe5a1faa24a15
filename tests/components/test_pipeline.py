"""Flow 1 end to end: real beat, real worker, the console's own components."""

import pytest
import redis
from django.conf import settings

from apps.components.models import ComponentState, HealthResult
from apps.components.services import components_ensure_self
from opsconsole.beat import beat_lock_key
from tests.procs import celery_beat, celery_worker, wait_until


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_pipeline__beat_and_worker__console_components_turn_healthy(tmp_path):
    redis.Redis.from_url(settings.REDIS_URL).delete(beat_lock_key())
    components = components_ensure_self()
    with celery_worker(tmp_path, name="pipeline"):
        beat = celery_beat(tmp_path)
        try:
            states = wait_until(
                lambda: _all_healthy(components),
                timeout=60,
                what=f"self components healthy; beat log:\n{beat.output()}",
            )
        finally:
            beat.stop()
    assert {state.component.slug for state in states} == {
        "console-postgres",
        "console-redis",
        "console-workers",
        # Pinged by beat's components.beat_heartbeat, run by the worker.
        "console-beat",
    }
    results = HealthResult.objects.filter(component__in=components)
    assert all(result.trace_id for result in results)


def _all_healthy(components):
    states = list(
        ComponentState.objects.filter(component__in=components).select_related(
            "component"
        )
    )
    return states if all(s.state == "healthy" for s in states) else None
