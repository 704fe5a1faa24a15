"""The scheduler: claims, expiry, and real workers sharing and losing batches."""

import os
import signal
import time
import uuid
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace
from unittest import mock

import pytest
from celery import current_app
from django.db.models import Count
from django.utils import timezone

from apps.components import checker
from apps.components.models import Component, HealthResult
from apps.components.services import (
    components_dispatch_due,
    components_run_batch,
    scheduling,
)
from tests.components.helpers import make_component
from tests.procs import celery_worker, running_workers_paused, wait_until


def _dispatch(capture, now, **kwargs):
    """Dispatch without sending the batches; returns (claimed, batch args)."""
    with capture(execute=False) as callbacks:
        claimed = components_dispatch_due(now=now, **kwargs)
    return claimed, callbacks


@pytest.mark.django_db
def test_dispatch__due_paused_and_future__only_due_claimed_once(
    django_capture_on_commit_callbacks,
):
    now = timezone.now()
    due = [make_component(next_check_at=now, interval_seconds=60) for _ in range(5)]
    make_component(next_check_at=now, paused=True)
    make_component(next_check_at=now + timedelta(seconds=30))
    claimed, batches = _dispatch(django_capture_on_commit_callbacks, now, batch_size=2)
    assert (claimed, len(batches)) == (5, 3)
    assert _dispatch(django_capture_on_commit_callbacks, now)[0] == 0
    for component in Component.objects.filter(pk__in=[c.pk for c in due]):
        assert now + timedelta(seconds=60) <= component.next_check_at
        assert component.next_check_at <= now + timedelta(seconds=66)
        assert component.claimed_until == now + timedelta(seconds=10 + 10)


@pytest.mark.django_db
def test_dispatch__claim_expired__claimed_again_and_old_batch_does_nothing(
    django_capture_on_commit_callbacks, target
):
    component = make_component(config={"url": target.url()}, timeout_seconds=1)
    now = timezone.now()
    _dispatch(django_capture_on_commit_callbacks, now)
    old_token = Component.objects.get(pk=component.pk).claim_token
    later = now + timedelta(seconds=12)
    assert _dispatch(django_capture_on_commit_callbacks, later)[0] == 1
    new_token = Component.objects.get(pk=component.pk).claim_token
    assert new_token != old_token
    assert (
        components_run_batch(component_ids=[component.pk], claim_token=old_token) == 0
    )
    with django_capture_on_commit_callbacks(execute=True):
        ran = components_run_batch(component_ids=[component.pk], claim_token=new_token)
    assert ran == 1
    assert (
        components_run_batch(component_ids=[component.pk], claim_token=new_token) == 0
    )
    assert HealthResult.objects.filter(component=component).count() == 1
    assert Component.objects.get(pk=component.pk).claimed_until is None


@pytest.fixture
def sent(monkeypatch):
    """The options of each batch sent (args, eta), in order."""
    calls = []
    monkeypatch.setattr(
        current_app, "send_task", lambda name, **options: calls.append(options)
    )
    return calls


@pytest.mark.django_db
def test_dispatch__due_before_next_tick__claimed_and_sent_for_its_due_time(
    django_capture_on_commit_callbacks, sent
):
    now = timezone.now()
    soon = make_component(
        next_check_at=now + timedelta(seconds=0.5), interval_seconds=60
    )
    make_component(next_check_at=now + timedelta(seconds=1.5))
    claimed, batches = _dispatch(django_capture_on_commit_callbacks, now)
    assert claimed == 1
    for callback in batches:
        callback()
    due = now + timedelta(seconds=0.5)
    [options] = sent
    assert options["args"] == [[soon.pk], mock.ANY]
    # Sent to start at its due time (unless that passed while sending).
    assert options["eta"] in (None, due)
    soon.refresh_from_db()
    # The next run and the claim's expiry count from the due time, not the claim.
    assert due + timedelta(seconds=60) <= soon.next_check_at
    assert soon.next_check_at <= due + timedelta(seconds=66)
    assert soon.claimed_until == due + timedelta(seconds=10 + 10)


@pytest.mark.django_db
def test_dispatch__due_times_ahead__sliced_each_sent_for_its_last(
    django_capture_on_commit_callbacks, sent, monkeypatch
):
    now = timezone.now()
    # As if sent at ``now``: an ETA is kept only while it is ahead of the clock.
    clock = SimpleNamespace(time=now.timestamp, perf_counter=time.perf_counter)
    monkeypatch.setattr(scheduling, "time", clock)
    offsets = [-5, -0.2, 0.1, 0.2, 0.34, 0.6, 0.8]
    made = [
        make_component(next_check_at=now + timedelta(seconds=offset))
        for offset in offsets
    ]
    claimed, batches = _dispatch(django_capture_on_commit_callbacks, now)
    for callback in batches:
        callback()
    assert claimed == 7
    pks = [component.pk for component in made]
    assert [(options["args"][0], options["eta"]) for options in sent] == [
        (pks[0:2], None),
        (pks[2:5], now + timedelta(seconds=0.34)),
        (pks[5:7], now + timedelta(seconds=0.8)),
    ]


@pytest.mark.django_db
def test_dispatch__claim_expired__runs_now_and_next_counts_from_now(
    django_capture_on_commit_callbacks, sent
):
    component = make_component(interval_seconds=60)
    now = timezone.now()
    _dispatch(django_capture_on_commit_callbacks, now)
    held_next = Component.objects.get(pk=component.pk).next_check_at
    later = now + timedelta(seconds=25)
    claimed, batches = _dispatch(django_capture_on_commit_callbacks, later)
    for callback in batches:
        callback()
    assert claimed == 1
    [options] = sent
    assert options["eta"] is None, "it runs at once"
    component.refresh_from_db()
    assert (
        later + timedelta(seconds=60)
        <= component.next_check_at
        < held_next + (timedelta(seconds=60))
    )


_claims_seen = []


@checker("tests.claim_seen")
def _claim_seen(slug: str) -> bool:
    """Note the component's claim expiry as the check finds it mid-run."""
    _claims_seen.append(Component.objects.get(slug=slug).claimed_until)
    return True


def _claimed_seen(slug: str, *, until: timedelta) -> tuple[Component, uuid.UUID]:
    """A component whose check notes its claim, claimed until ``until`` from now
    (a 5 s timeout, no retries: its run needs 5 s + the claim margin)."""
    config = {"name": "tests.claim_seen", "params": {"slug": slug}}
    component = make_component(
        kind="python", config=config, slug=slug, timeout_seconds=5
    )
    token = uuid.uuid4()
    Component.objects.filter(pk=component.pk).update(
        claim_token=token, claimed_until=timezone.now() + until
    )
    _claims_seen.clear()
    return component, token


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_run_batch__claim_about_to_expire__lasts_the_run_from_its_start():
    component, token = _claimed_seen("renewed", until=timedelta(seconds=1))
    started = timezone.now()
    assert components_run_batch(component_ids=[component.pk], claim_token=token) == 1
    assert _claims_seen[0] >= started + timedelta(seconds=5 + 10)
    assert Component.objects.get(pk=component.pk).claimed_until is None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_run_batch__claim_with_time_to_spare__read_not_rewritten():
    # Given a claim that lasts well past the check's worst case
    component, token = _claimed_seen("spare", until=timedelta(seconds=60))
    spare = Component.objects.get(pk=component.pk).claimed_until

    # When its batch runs
    assert components_run_batch(component_ids=[component.pk], claim_token=token) == 1

    # Then the check ran under the claim as it was (a renewal would have moved it
    # to 15 s from the start), and its result was recorded
    assert _claims_seen == [spare]
    assert HealthResult.objects.filter(component=component).count() == 1


def _results_per_component(components) -> Counter:
    rows = (
        HealthResult.objects.filter(component__in=components)
        .values_list("component_id")
        .annotate(n=Count("id"))
    )
    return Counter(dict(rows))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_scheduler__two_workers_200_due__each_checked_once(target, tmp_path):
    components = [
        make_component(config={"url": target.url(f"/c/{n}")}, interval_seconds=3600)
        for n in range(200)
    ]
    with (
        running_workers_paused(),
        celery_worker(tmp_path, name="share1") as first,
        celery_worker(tmp_path, name="share2") as second,
    ):
        # Dispatch on every poll, as beat would: nothing may be claimed twice.
        wait_until(
            lambda: (
                components_dispatch_due(now=timezone.now(), batch_size=10) >= 0
                and sum(_results_per_component(components).values()) >= 200
            ),
            timeout=90,
            what="200 results",
        )
        assert components_dispatch_due(now=timezone.now(), batch_size=10) == 0
        logs = [first.output(), second.output()]
    counts = _results_per_component(components)
    assert set(counts.values()) == {1}
    assert len(counts) == 200
    assert set(target.hits.values()) == {1}
    assert all("components.run_batch" in log for log in logs), "one worker idle"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_scheduler__worker_killed_mid_batch__checks_run_again(target, tmp_path):
    target.delay = 1.5
    components = [
        make_component(config={"url": target.url(f"/k/{n}")}, timeout_seconds=3)
        for n in range(5)
    ]
    # Only the workers started here may take the batch (not the session's worker).
    with running_workers_paused():
        with celery_worker(tmp_path, name="doomed") as doomed:
            assert components_dispatch_due(now=timezone.now()) == 5
            wait_until(
                lambda: len(target.hits) == 5, timeout=30, what="batch in flight"
            )
            os.killpg(doomed.popen.pid, signal.SIGKILL)
            doomed.popen.wait(10)
        assert not HealthResult.objects.filter(component__in=components).exists()
        assert components_dispatch_due(now=timezone.now()) == 0, "claim still held"
        target.delay = 0
        with celery_worker(tmp_path, name="rescuer"):
            wait_until(
                lambda: (
                    components_dispatch_due(now=timezone.now()) >= 0
                    and len(_results_per_component(components)) == 5
                ),
                timeout=60,
                what="the lost checks to run again",
            )
    assert set(_results_per_component(components).values()) == {1}
    assert set(target.hits.values()) == {2}
