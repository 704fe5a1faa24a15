"""Flow 3 with real worker processes: a worker killed mid-heal. The webhook target
counts requests in flight."""

import json
import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.components.models import ComponentState
from apps.components.services import component_check_now
from apps.core.models import AuditEvent
from apps.healing.locks import lock_ttl
from apps.healing.models import Episode, HealingAttempt, HealingPolicy
from apps.healing.policy import attempt_lost_after
from apps.healing.services import healing_dispatch_due
from tests.components.helpers import http_target, make_component
from tests.healing.helpers import SECRET, Receiver, make_policy, receiver
from tests.procs import celery_worker, running_workers_paused, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
SYSTEM = AuditEvent.Source.SYSTEM


def _failing_component(service, hook: Receiver, **policy: object) -> HealingPolicy:
    """A component checking ``service`` (down), healed by POSTing to ``hook``."""
    service.status = 503
    component = make_component(
        config={"url": service.url("/health")},
        failure_threshold=1,
        success_threshold=1,
        interval_seconds=3600,
    )
    config = {"url": hook.url(), "secret": SECRET}
    return make_policy(component, action="webhook", config=config, **policy)


def _fix_on_call(service, hook: Receiver, number: int) -> None:
    """The ``number``-th webhook call brings the service back."""

    def fix() -> None:
        if len(hook.received) >= number:
            service.status = 200

    hook.on_request = fix


def _healed(policy: HealingPolicy) -> HealingPolicy | None:
    """The policy once its episode ended in a heal and the component is healthy."""
    healing_dispatch_due(now=timezone.now())  # what beat does every 15 s
    fresh = HealingPolicy.objects.get(pk=policy.pk)
    state = ComponentState.objects.get(component_id=policy.component_id)
    done = fresh.episode == Episode.IDLE and fresh.last_healed_at is not None
    return fresh if done and state.state == "healthy" else None


def _attempts(policy: HealingPolicy) -> list[HealingAttempt]:
    return list(HealingAttempt.objects.filter(policy=policy).order_by("started_at"))


def _call_numbers(hook: Receiver) -> list[int]:
    return [json.loads(body)["attempt"] for _, body in hook.received]


def test_attempt__worker_killed_mid_heal__failed_as_lost_and_next_attempt_heals(
    tmp_path,
):
    with http_target() as service, receiver() as hook:
        hook.delays = [3.0]  # the first call hangs: its worker is killed meanwhile
        _fix_on_call(service, hook, 2)
        policy = _failing_component(
            service, hook, timeout_seconds=2, backoff_seconds=0.2, max_attempts=3
        )
        slug = policy.component.slug
        with running_workers_paused():
            with celery_worker(tmp_path, name="doomed") as doomed:
                component_check_now(slug=slug, actor=None, source=SYSTEM)
                wait_until(
                    lambda: hook.in_flight == 1,
                    timeout=30,
                    what=f"the webhook in flight; log:\n{doomed.output()[-3000:]}",
                )
                os.killpg(doomed.popen.pid, signal.SIGKILL)
                doomed.popen.wait(10)
            (orphan,) = _attempts(policy)
            assert orphan.outcome == "running"
            assert lock_ttl(policy.component_id) > 0  # the dead worker's, until TTL
            with celery_worker(tmp_path, name="rescuer") as rescuer:
                healed = wait_until(
                    lambda: _healed(policy),
                    timeout=60,
                    interval=0.5,
                    what=f"healed by the rescuer; log:\n{rescuer.output()[-3000:]}",
                )

    lost, second = _attempts(policy)
    assert (lost.number, lost.outcome) == (1, "failed")
    assert lost.output.startswith("worker lost")
    assert (second.number, second.outcome) == (2, "succeeded")
    limit = timedelta(seconds=attempt_lost_after(timeout=2))
    assert second.started_at >= lost.started_at + limit
    assert (_call_numbers(hook), hook.max_in_flight) == ([1, 2], 1)
    assert AuditEvent.objects.filter(action="healing.attempt_lost").count() == 1
    assert healed.episode_attempts == 0
