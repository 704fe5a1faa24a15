"""Every-second scheduler ticks do not flood the logs; their failures still show."""

import logging

import pytest


@pytest.mark.parametrize(
    ("logger", "message", "args"),
    [
        (
            "celery.app.trace",
            "Task %(name)s[%(id)s] succeeded",
            [{"name": "components.dispatch_due", "id": "1"}],
        ),
        (
            "celery.worker.strategy",
            "Task %(name)s[%(id)s] received",
            [{"name": "components.dispatch_due", "id": "1"}],
        ),
        (
            "celery.beat",
            "Scheduler: Sending due task %s (%s)",
            ["components.dispatch_due", "components.dispatch_due"],
        ),
    ],
)
def test_logging__tick_task_info__dropped(caplog, logger, message, args):
    with caplog.at_level(logging.INFO):
        logging.getLogger(logger).info(message, *args)

    assert caplog.records == []


def test_logging__tick_task_error__kept(caplog):
    with caplog.at_level(logging.INFO):
        logging.getLogger("celery.app.trace").error(
            "Task %(name)s[%(id)s] raised",
            {"name": "components.dispatch_due", "id": "1"},
        )

    assert [r.levelname for r in caplog.records] == ["ERROR"]


def test_logging__other_task_info__kept(caplog):
    with caplog.at_level(logging.INFO):
        logging.getLogger("celery.app.trace").info(
            "Task %(name)s[%(id)s] succeeded",
            {"name": "flags.apply_due_changes", "id": "2"},
        )

    assert len(caplog.records) == 1
