"""Flow 3 with real worker processes: a worker killed mid-heal, two workers racing,
an action that always fails. The webhook target counts requests in flight."""

import json
import os
import signal
from datetime import timedelta
from itertools import pairwise

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from apps.components.models import ComponentState
from apps.components.services import component_check_now
from apps.core.models import AuditEvent
from apps.healing.locks import lock_ttl
from apps.healing.models import Episode, HealingAttempt, HealingPolicy
from apps.healing.policy import attempt_lost_after
from apps.healing.services import (
    ATTEMPT_TASK,
    healing_dispatch_due,
    healing_heal_now,
)
from apps.live.publisher import channel
from opsconsole.celery import app
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


def test_attempt__two_workers_three_requests_at_once__action_runs_one_at_a_time(
    tmp_path,
):
    with http_target() as service, receiver() as hook:
        hook.delay = 0.5
        hook.statuses = [500]  # the first call fails, the second heals
        _fix_on_call(service, hook, 2)
        policy = _failing_component(
            service, hook, timeout_seconds=2, backoff_seconds=0.2, max_attempts=5
        )
        slug = policy.component.slug
        with (
            running_workers_paused(),
            celery_worker(tmp_path, name="one"),
            celery_worker(tmp_path, name="two") as two,
        ):
            component_check_now(slug=slug, actor=None, source=SYSTEM)
            wait_until(
                lambda: (
                    HealingPolicy.objects.get(pk=policy.pk).episode == Episode.ACTIVE
                ),
                timeout=30,
                what="the listener's request",
            )
            for reason in ("pager went off", "customer report"):
                healing_heal_now(slug=slug, reason=reason, actor=None, source=SYSTEM)
            wait_until(
                lambda: _healed(policy),
                timeout=60,
                interval=0.5,
                what=f"healed; log:\n{two.output()[-3000:]}",
            )

    attempts = _attempts(policy)
    assert hook.max_in_flight == 1
    assert len(attempts) == len(hook.received) >= 2
    assert [a.number for a in attempts] == _call_numbers(hook)
    assert [a.outcome for a in attempts][-1] == "succeeded"
    for earlier, later in pairwise(attempts):
        assert earlier.finished_at <= later.started_at


def test_attempt__action_always_fails__backs_off_per_policy_and_escalates_once(
    worker,
):
    pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub(
        ignore_subscribe_messages=True
    )
    pubsub.subscribe(channel())
    with http_target() as service, receiver() as hook:
        hook.status = 500
        policy = _failing_component(
            service,
            hook,
            max_attempts=3,
            backoff_seconds=0.5,
            backoff_max_seconds=5,
            jitter=0.2,
            timeout_seconds=2,
        )
        component_check_now(slug=policy.component.slug, actor=None, source=SYSTEM)
        wait_until(
            lambda: (
                HealingPolicy.objects.get(pk=policy.pk).episode == Episode.NEEDS_HUMAN
            ),
            timeout=60,
            what=f"escalation; log:\n{worker.output()[-3000:]}",
        )
        # Duplicates after it (a re-sent task, the beat) must not escalate again.
        extra = [
            app.send_task(ATTEMPT_TASK, args=[policy.pk], ignore_result=False)
            for _ in range(3)
        ]
        for result in extra:
            result.get(timeout=30)
        assert healing_dispatch_due(now=timezone.now()) == 0
    events = _healing_events(pubsub, policy.component.slug)

    attempts = _attempts(policy)
    assert [(a.number, a.outcome) for a in attempts] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    assert len(hook.received) == 3
    for earlier, later in pairwise(attempts):
        shortest = 0.5 * 2 ** (earlier.number - 1) * (1 - 0.2)
        assert later.started_at - earlier.finished_at >= timedelta(seconds=shortest)
    escalations = AuditEvent.objects.filter(action="healing.escalated")
    assert [event.after["attempts"] for event in escalations] == [3]
    assert events.count("escalated") == 1


def _healing_events(pubsub, slug: str) -> list[str]:
    """Every ``healing`` event published for ``slug`` so far, in order (read until
    the channel has been quiet a while; ``None`` also stands for control replies)."""
    events, quiet = [], 0
    while quiet < 5:
        message = pubsub.get_message(timeout=0.2)
        quiet = quiet + 1 if message is None else 0
        data = json.loads(message["data"]) if message else {}
        if data.get("topic") == "healing" and data.get("key") == slug:
            events.append(data["payload"]["event"])
    pubsub.close()
    return events
