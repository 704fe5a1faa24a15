"""Flow 3 in-process: the lock, dry runs, escalation, cooldown, lost attempts."""

import json
import threading
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.core.models import AuditEvent
from apps.healing.models import Episode, HealingAttempt, HealingPolicy
from apps.healing.policy import attempt_lost_after
from apps.healing.services import (
    healing_attempt_run,
    healing_dispatch_due,
    healing_request,
)
from apps.healing.services.lost import attempts_lost_fail
from apps.live.publisher import channel
from tests.components.helpers import make_component
from tests.healing import helpers
from tests.healing.helpers import make_policy, set_unhealthy
from tests.procs import running_workers_paused, wait_until


@pytest.fixture(scope="module", autouse=True)
def _no_worker_takes_our_attempts():
    """These tests run attempts in this process. A session worker (started for an
    earlier module) would take the attempt task each request enqueues, run it first
    and hold the lock the test's own run is waiting for."""
    with running_workers_paused():
        yield


def _start(**policy: object) -> HealingPolicy:
    component = make_component()
    made = make_policy(component, **policy)
    set_unhealthy(component, timezone.now())
    assert healing_request(component_id=component.pk, reason="down", now=timezone.now())
    return made


def _heal_in_thread(policy_id: int, results: list) -> threading.Thread:
    def run() -> None:
        try:
            results.append(healing_attempt_run(policy_id=policy_id))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_healing_attempt_run__two_at_once__action_runs_once():
    policy = _start()
    helpers.gate.update(started=threading.Event(), release=threading.Event())
    first: list = []
    second: list = []

    holder = _heal_in_thread(policy.pk, first)
    assert helpers.gate["started"].wait(20), "the first heal never started"
    _heal_in_thread(policy.pk, second).join(20)
    helpers.gate["release"].set()
    holder.join(20)

    assert second == [None]  # refused: the first holds the component's lock
    assert [attempt.outcome for attempt in first] == ["succeeded"]
    assert len(helpers.calls) == 1
    # Once the first is done the next attempt is not due yet: still one run.
    assert healing_attempt_run(policy_id=policy.pk) is None
    assert HealingAttempt.objects.filter(policy=policy).count() == 1


@pytest.mark.django_db
def test_healing_attempt_run__dry_run__nothing_runs_but_attempt_recorded():
    policy = _start(dry_run=True)

    attempt = healing_attempt_run(policy_id=policy.pk)

    assert helpers.calls == []
    assert attempt is not None
    assert (attempt.dry_run, attempt.outcome) == (True, "dry_run")
    assert attempt.output.startswith("dry run: would call tests.record")
    assert attempt.finished_at is not None


@pytest.mark.django_db
def test_healing_attempt_run__attempts_exhausted__escalates_once_audit_and_live(
    django_capture_on_commit_callbacks,
):
    policy = _start(
        config={"name": "tests.record", "kwargs": {"ok": False}}, max_attempts=2
    )
    now = timezone.now()
    for hours in (0, 1):
        done = healing_attempt_run(
            policy_id=policy.pk, now=now + timedelta(hours=hours)
        )
        assert getattr(done, "outcome", None) == "failed"
    pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub(
        ignore_subscribe_messages=True
    )
    pubsub.subscribe(channel())

    with django_capture_on_commit_callbacks(execute=True):
        escalated = healing_attempt_run(
            policy_id=policy.pk, now=now + timedelta(hours=2)
        )
    message = wait_until(lambda: _healing_message(pubsub), timeout=10, what="live")
    again = healing_attempt_run(policy_id=policy.pk, now=now + timedelta(hours=3))

    pubsub.close()
    policy.refresh_from_db()
    assert (escalated, again) == (None, None)
    assert (policy.episode, len(helpers.calls)) == (Episode.NEEDS_HUMAN, 2)
    audit = AuditEvent.objects.filter(action="healing.escalated")
    assert [event.after["attempts"] for event in audit] == [2]
    assert message["payload"]["event"] == "escalated"
    assert message["key"] == policy.component.slug


def _healing_message(pubsub):
    message = pubsub.get_message(timeout=0.1)
    if message is None:
        return None
    data = json.loads(message["data"])
    return data if data["topic"] == "healing" else None


@pytest.mark.django_db
def test_healing_request__within_cooldown_after_a_heal__first_attempt_waits():
    component = make_component()
    policy = make_policy(component, cooldown_seconds=600)
    healed = timezone.now() - timedelta(seconds=100)
    HealingPolicy.objects.filter(pk=policy.pk).update(last_healed_at=healed)
    set_unhealthy(component, timezone.now())

    healing_request(component_id=component.pk, reason="down", now=timezone.now())

    policy.refresh_from_db()
    assert policy.next_attempt_at == healed + timedelta(seconds=600)
    assert healing_attempt_run(policy_id=policy.pk) is None
    assert helpers.calls == []


@pytest.mark.django_db
def test_healing_attempt_run__component_up_again__episode_ends_without_action():
    policy = _start()
    policy.component.state.__class__.objects.filter(component=policy.component).update(
        state="healthy", last_status="healthy"
    )

    assert healing_attempt_run(policy_id=policy.pk) is None

    policy.refresh_from_db()
    assert (policy.episode, helpers.calls) == (Episode.IDLE, [])


def _orphan(policy: HealingPolicy, *, age: float) -> HealingAttempt:
    """Attempt 1 as a worker killed mid-action leaves it, started ``age`` s ago."""
    started = timezone.now() - timedelta(seconds=age)
    HealingPolicy.objects.filter(pk=policy.pk).update(
        episode_attempts=1, next_attempt_at=started + timedelta(seconds=1)
    )
    return HealingAttempt.objects.create(
        policy=policy,
        component=policy.component,
        number=1,
        action=policy.action,
        started_at=started,
    )


@pytest.mark.django_db
def test_healing_dispatch_due__attempt_running_past_limit__failed_lost_next_runs(
    django_capture_on_commit_callbacks,
):
    policy = _start(timeout_seconds=1, max_attempts=2)  # lost after 1 + 3 + 2 s
    orphan = _orphan(policy, age=6.5)

    with django_capture_on_commit_callbacks(execute=False):
        assert healing_dispatch_due(now=timezone.now()) == 1
    next_one = healing_attempt_run(policy_id=policy.pk)

    orphan.refresh_from_db()
    assert orphan.outcome == "failed"
    assert orphan.output.startswith("worker lost: still running")
    lost = AuditEvent.objects.get(action="healing.attempt_lost")
    assert lost.after == {"attempt": 1, "outcome": "failed"}
    assert (next_one.number, next_one.outcome) == (2, "succeeded")
    assert len(helpers.calls) == 1


@pytest.mark.django_db
def test_healing_attempt_run__lost_attempt_was_the_last__escalates_without_action():
    policy = _start(timeout_seconds=1, max_attempts=1)
    _orphan(policy, age=6.5)

    assert healing_attempt_run(policy_id=policy.pk) is None

    policy.refresh_from_db()
    assert (policy.episode, helpers.calls) == (Episode.NEEDS_HUMAN, [])
    assert AuditEvent.objects.filter(action="healing.attempt_lost").count() == 1


@pytest.mark.django_db
def test_healing_attempt_run__earlier_attempt_running_within_limit__refused():
    policy = _start(timeout_seconds=1)
    orphan = _orphan(policy, age=5.5)  # lock long expired, not yet given up

    assert healing_attempt_run(policy_id=policy.pk) is None
    assert healing_dispatch_due(now=timezone.now()) >= 0

    orphan.refresh_from_db()
    assert (orphan.outcome, helpers.calls) == ("running", [])


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_healing_attempt_run__finishes_after_failed_as_lost__lost_kept_result_noted():
    policy = _start(timeout_seconds=1)
    helpers.gate.update(started=threading.Event(), release=threading.Event())
    results: list = []

    holder = _heal_in_thread(policy.pk, results)
    assert helpers.gate["started"].wait(20), "the heal never started"
    later = timezone.now() + timedelta(seconds=attempt_lost_after(timeout=1))
    assert attempts_lost_fail(now=later) == 1
    helpers.gate["release"].set()
    holder.join(20)

    (attempt,) = HealingAttempt.objects.filter(policy=policy)
    assert attempt.outcome == "failed"
    assert attempt.output.startswith("worker lost")
    assert "finished later: succeeded" in attempt.output
    assert [done.pk for done in results] == [attempt.pk]
