"""Flow 3 end to end with a real Celery worker: unhealthy → healed → healthy."""

import pytest

from apps.components.models import ComponentState
from apps.components.services import component_check_now
from apps.core.models import AuditEvent
from apps.healing.models import Episode, HealingAttempt, HealingPolicy
from tests.components.helpers import http_target, make_component
from tests.healing.helpers import SECRET, make_policy, receiver
from tests.procs import wait_until


def _healed(component):
    policy = HealingPolicy.objects.get(component=component)
    state = ComponentState.objects.get(component=component)
    done = state.state == "healthy" and policy.episode == Episode.IDLE
    return (policy, state) if done and policy.last_healed_at else None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_flow__component_unhealthy__webhook_heals_it_and_it_recovers(worker):
    with http_target() as service, receiver() as hook:
        service.status = 503

        def fix() -> None:
            service.status = 200

        hook.on_request = fix
        component = make_component(
            config={"url": service.url("/health")},
            failure_threshold=1,
            success_threshold=1,
            interval_seconds=3600,
        )
        make_policy(
            component,
            action="webhook",
            config={"url": hook.url(), "secret": SECRET},
            backoff_seconds=1,
        )
        component_check_now(
            slug=component.slug, actor=None, source=AuditEvent.Source.SYSTEM
        )

        policy, _ = wait_until(
            lambda: _healed(component),
            timeout=60,
            what=f"healed and healthy; worker log:\n{worker.output()[-3000:]}",
        )

    attempts = list(HealingAttempt.objects.filter(component=component))
    assert [(a.number, a.outcome) for a in attempts] == [(1, "succeeded")]
    assert len(hook.received) == 1
    assert attempts[0].output.startswith("HTTP 200")
    actions = set(
        AuditEvent.objects.filter(target_id=str(policy.pk)).values_list(
            "action", flat=True
        )
    )
    assert {"healing.requested", "healing.attempted", "healing.recovered"} <= actions
