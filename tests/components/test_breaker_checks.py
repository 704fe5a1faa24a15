"""Checks run through their component's breaker (issue #6 item 3)."""

import uuid
from collections import Counter

import pytest

from apps.breakers.agent import default_agent
from apps.breakers.services import breaker_act, breaker_register
from apps.components.models import Component, HealthResult
from apps.components.services import component_check_now, components_run_batch
from apps.core.models import AuditEvent
from tests.components.helpers import make_component

pytestmark = pytest.mark.django_db
SYSTEM = AuditEvent.Source.SYSTEM


def _check(component: Component, capture) -> HealthResult:
    with capture():  # the enqueue on commit is not run: this test runs the batch
        claimed = component_check_now(slug=component.slug, actor=None, source=SYSTEM)
    components_run_batch(component_ids=[claimed.pk], claim_token=claimed.claim_token)
    return HealthResult.objects.get(component=component)


def test_check__breaker_closed__target_called_and_healthy(
    target, django_capture_on_commit_callbacks
):
    component = make_component(config={"url": target.url("/health")})

    result = _check(component, django_capture_on_commit_callbacks)

    assert result.status == "healthy"
    assert target.hits == Counter({"/health": 1})


def test_check__breaker_forced_open__unhealthy_breaker_open_without_calling_out(
    target, django_capture_on_commit_callbacks
):
    slug = f"dep-{uuid.uuid4().hex[:8]}"
    component = make_component(slug=slug, config={"url": target.url("/health")})
    name = f"component:{slug}"
    default_agent().breaker(name)  # in use here, so this process adopts at once
    breaker_register(name=name)
    with django_capture_on_commit_callbacks(execute=True):
        breaker_act(
            name=name, action="force_open", actor=None, reason="drill", source=SYSTEM
        )

    result = _check(component, django_capture_on_commit_callbacks)

    assert result.status == "unhealthy"
    assert f"Breaker {name} is FORCED_OPEN" in result.message
    assert result.details["breaker"]["state"] == "FORCED_OPEN"
    assert target.hits == Counter()
