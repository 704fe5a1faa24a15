"""The task outcome receivers, called as Celery calls them (#8)."""

import pytest
from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import Task, signals
from django.test import override_settings

from apps.live import outcomes
from apps.live.tasks import sample

Recorded = list[tuple[str, float, dict[str, str]]]


@pytest.fixture
def task() -> Task:
    return sample


@pytest.fixture
def recorded(monkeypatch) -> Recorded:
    calls: Recorded = []
    monkeypatch.setattr(
        outcomes.metrics,
        "record",
        lambda name, value, tags=None: calls.append((name, value, tags)),
    )
    return calls


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("SUCCESS", "succeeded"),
        ("FAILURE", "failed"),
        ("RETRY", "retried"),
        ("IGNORED", "ignored"),
    ],
)
def test_receivers__run_ends_in_state__one_runtime_sample_with_its_outcome(
    recorded, task, state, outcome
):
    outcomes.task_prerun(task_id="t1", task=task)
    outcomes.task_postrun(task_id="t1", task=task, state=state)

    ((name, runtime, tags),) = recorded
    assert name == outcomes.RUNTIME_METRIC
    assert runtime >= 0
    assert tags == {"task": "live.sample", "outcome": outcome}


def test_receivers__postrun_without_prerun__nothing_recorded(recorded, task):
    outcomes.task_postrun(task_id="never-started", task=task, state="SUCCESS")

    assert recorded == []


def test_receivers__failure_of_a_run_in_this_process__left_to_postrun(recorded, task):
    outcomes.task_prerun(task_id="t2", task=task)
    outcomes.task_failure(task_id="t2", sender=task, exception=RuntimeError("x"))
    outcomes.task_postrun(task_id="t2", task=task, state="FAILURE")

    assert [tags["outcome"] for _, _, tags in recorded] == ["failed"]


@pytest.mark.parametrize(
    ("exception", "runtime"),
    [(TimeLimitExceeded(90.0), 90.0), (WorkerLostError("gone"), 0.0)],
)
def test_receivers__run_killed_in_its_pool_process__failure_recorded_by_main(
    recorded, task, exception, runtime
):
    outcomes.task_failure(task_id="t3", sender=task, exception=exception)

    assert recorded == [
        (outcomes.RUNTIME_METRIC, runtime, {"task": "live.sample", "outcome": "failed"})
    ]


def test_receivers__rejected_message_reported_by_main__not_counted_twice(
    recorded, task
):
    outcomes.task_failure(task_id="t4", sender=task, exception=RuntimeError("x"))

    assert recorded == []


@pytest.mark.parametrize("enabled", [True, False])
def test_connect__setting__receivers_connected_only_when_on(enabled):
    def connected() -> bool:
        # Receivers connected with weak=False are kept as they are.
        return any(
            receiver is outcomes.task_postrun
            for _, receiver in signals.task_postrun.receivers
        )

    with override_settings(OPSCONSOLE_LIVE_TASK_OUTCOMES=enabled):
        outcomes.connect()
    try:
        assert connected() is enabled
    finally:
        for signal, receiver in (
            (signals.task_prerun, outcomes.task_prerun),
            (signals.task_postrun, outcomes.task_postrun),
            (signals.task_failure, outcomes.task_failure),
        ):
            signal.disconnect(receiver)
