"""Scheduled changes: made by ``flags.apply_due_changes`` when due, audited, cancelable."""

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from apps.core.exceptions import Conflict
from apps.core.models import AuditEvent
from apps.flags.models import ChangeRequest, Flag, ScheduledChange, ScheduleStatus
from apps.flags.services import (
    flag_create,
    scheduled_change_cancel,
    scheduled_change_create,
)
from apps.flags.tasks import apply_due_changes
from tests.factories import bearer, make_token, make_user
from tests.flags.builders import flag_data
from tests.procs import wait_until

pytestmark = pytest.mark.django_db

API = AuditEvent.Source.API


def _create(key: str = "checkout", **overrides) -> Flag:
    return flag_create(
        key=key, data=flag_data(**overrides), actor=None, reason="", source=API
    )


def _schedule(key: str = "checkout", minutes: int = -1, **changes) -> ScheduledChange:
    return scheduled_change_create(
        key=key,
        changes=changes or {"enabled": True},
        run_at=timezone.now() + timedelta(minutes=minutes),
        actor=None,
        reason="night launch",
        source=API,
    )


def test_apply_due_changes__one_due_one_later__only_due_applied_and_audited():
    # Given a flag that is off, one change due and one for later
    _create(enabled=False)
    due = _schedule(enabled=True)
    later = _schedule(minutes=60, name="Later")
    # When the beat task runs
    ran = apply_due_changes()
    # Then only the due one ran, through the service (versioned, audited as task)
    due.refresh_from_db()
    later.refresh_from_db()
    flag = Flag.objects.get(key="checkout")
    event = AuditEvent.objects.get(action="flag.toggled")
    assert (ran, flag.enabled, flag.version) == (1, True, 2)
    assert (due.status, due.outcome) == (ScheduleStatus.DONE, "applied as version 2")
    assert later.status == ScheduleStatus.PENDING
    assert (event.source, event.reason) == ("task", "night launch")


def test_apply_due_changes__change_invalid_then__failed_with_message_flag_unchanged():
    _create("base", enabled=False)
    _create("child", enabled=False, requires=[{"flag": "base"}])
    scheduled = _schedule("child", enabled=True)

    apply_due_changes()

    scheduled.refresh_from_db()
    assert scheduled.status == ScheduleStatus.FAILED
    assert scheduled.outcome == "enabled: requires base, which is off"
    assert Flag.objects.get(key="child").enabled is False


def test_apply_due_changes__flag_requires_approval__change_request_opened():
    _create(enabled=False, requires_approval=True)
    scheduled = _schedule(enabled=True)

    apply_due_changes()

    scheduled.refresh_from_db()
    change = ChangeRequest.objects.get()
    assert scheduled.outcome == (
        f"the flag requires approval: opened change request #{change.pk}"
    )
    assert Flag.objects.get(key="checkout").enabled is False


def test_apply_due_changes__run_twice__applied_once():
    _create(enabled=False)
    _schedule(enabled=True)

    assert (apply_due_changes(), apply_due_changes()) == (1, 0)
    assert Flag.objects.get(key="checkout").version == 2


def test_scheduled_change_cancel__pending__cancelled_and_never_run():
    _create(enabled=False)
    scheduled = _schedule(enabled=True)

    scheduled_change_cancel(
        key="checkout", change_id=scheduled.pk, actor=None, reason="no", source=API
    )
    apply_due_changes()

    scheduled.refresh_from_db()
    assert scheduled.status == ScheduleStatus.CANCELLED
    assert Flag.objects.get(key="checkout").enabled is False
    with pytest.raises(Conflict):
        scheduled_change_cancel(
            key="checkout", change_id=scheduled.pk, actor=None, reason="", source=API
        )


def test_scheduled_changes_api__create_list_cancel__201_listed_cancelled(client):
    _create(enabled=False)
    _, raw = make_token(user=make_user(role="operator"), scopes=("read", "write"))
    url = "/api/v1/flags/checkout/scheduled-changes"
    run_at = (timezone.now() + timedelta(hours=2)).isoformat()

    created = client.post(
        url,
        {"changes": {"enabled": True}, "run_at": run_at, "reason": "02:00"},
        "application/json",
        headers=bearer(raw),
    )
    listed = client.get(f"{url}?status=pending", headers=bearer(raw)).json()
    cancelled = client.post(
        f"{url}/{created.json()['id']}/cancel",
        {"reason": "postponed"},
        "application/json",
        headers=bearer(raw),
    )

    assert created.status_code == 201, created.json()
    assert created.json()["action"] == "toggled"
    assert [item["id"] for item in listed["items"]] == [created.json()["id"]]
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")


def test_scheduled_changes_api__unknown_field__422_nothing_scheduled(client):
    _create()
    _, raw = make_token(user=make_user(role="operator"), scopes=("read", "write"))

    response = client.post(
        "/api/v1/flags/checkout/scheduled-changes",
        {"changes": {"colour": "red"}, "run_at": timezone.now().isoformat()},
        "application/json",
        headers=bearer(raw),
    )

    assert response.status_code == 422, response.json()
    assert response.json()["extra"]["fields"] == {"colour": ["unknown field"]}
    assert not ScheduledChange.objects.exists()


def test_scheduled_change_admin__add_then_cancel_action__created_and_cancelled(
    client,
):
    client.force_login(make_user(role="operator"))
    flag = _create(enabled=False)
    run_at = timezone.localtime() + timedelta(hours=1)

    client.post(
        reverse("admin:flags_scheduledchange_add"),
        {
            "flag": flag.pk,
            "changes": '{"enabled": true}',
            "run_at_0": run_at.strftime("%Y-%m-%d"),
            "run_at_1": run_at.strftime("%H:%M:%S"),
            "reason": "at night",
        },
    )
    scheduled = ScheduledChange.objects.get()
    client.post(
        reverse("admin:flags_scheduledchange_changelist"),
        {
            "action": "cancel",
            ACTION_CHECKBOX_NAME: [str(scheduled.pk)],
            "confirm": "yes",
            "reason": "postponed",
        },
    )

    scheduled.refresh_from_db()
    assert (scheduled.action, scheduled.status) == ("toggled", ScheduleStatus.CANCELLED)
    assert AuditEvent.objects.filter(action="flag.scheduled").count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_apply_due_changes__real_worker__due_change_applied(worker):
    _create(enabled=False)
    scheduled = _schedule(enabled=True)

    apply_due_changes.delay()

    wait_until(
        lambda: (
            ScheduledChange.objects.get(pk=scheduled.pk).status == ScheduleStatus.DONE
        ),
        timeout=30,
        what="the worker to apply the scheduled change",
    )
    assert Flag.objects.get(key="checkout").enabled is True
