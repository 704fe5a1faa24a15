"""The console switch opsconsole.checks.enabled stops scheduled checks (issue #4 item 12)."""

import pytest
from django.utils import timezone

from apps.components.models import Component
from apps.components.services import components_dispatch_due
from apps.core.models import AuditEvent
from apps.flags.services import flag_toggle
from tests.components.helpers import make_component


def _switch(enabled: bool, capture, key: str = "opsconsole.checks.enabled") -> None:
    with capture(execute=True):  # the snapshot is rebuilt on commit
        flag_toggle(
            key=key,
            enabled=enabled,
            actor=None,
            reason="test",
            source=AuditEvent.Source.SYSTEM,
        )


@pytest.mark.django_db
def test_dispatch__checks_switched_off__claims_nothing_until_back_on(
    django_capture_on_commit_callbacks,
):
    component = make_component()
    # Healing requires checks: the validation rules want it off first.
    _switch(False, django_capture_on_commit_callbacks, "opsconsole.healing.enabled")
    _switch(False, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks():
        claimed_off = components_dispatch_due(now=timezone.now())
    assert claimed_off == 0
    assert Component.objects.get(pk=component.pk).claim_token is None

    _switch(True, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks():
        claimed_on = components_dispatch_due(now=timezone.now())
    assert claimed_on == 1
