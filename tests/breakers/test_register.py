"""Registering breakers: many at once in a few statements, configs kept and shared."""

import uuid

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.breakers.agent import Agent
from apps.breakers.config import BreakerConfig
from apps.breakers.fleet import Fleet
from apps.breakers.models import Breaker
from apps.breakers.services import breakers_register
from tests.procs import wait_until


@pytest.mark.django_db
def test_breakers_register__many_names__rows_made_configs_kept_few_statements():
    # Given one breaker already configured by an operator
    Breaker.objects.create(name="known", minimum_calls=7)
    names = ["known"] + [f"component:c{n}" for n in range(2500)]

    # When 2,501 names are registered at once (one of them twice)
    with CaptureQueriesContext(connection) as queries:
        configs = breakers_register(names=[*names, "component:c0"])

    # Then every name has a row, the known one keeps its config
    assert Breaker.objects.filter(name__in=names).count() == len(names)
    assert set(configs) == set(names)
    assert configs["known"].minimum_calls == 7
    assert configs["component:c1"] == BreakerConfig()
    # ...in a few statements per thousand names, not one or two per name
    assert len(queries.captured_queries) <= 3 * 3


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_agent__many_new_breakers__registered_and_configs_shared_fleet_wide():
    # Given an agent that persists, and one breaker configured in the database
    Breaker.objects.create(name="configured", minimum_calls=9)
    prefix = f"{settings.OPSCONSOLE_REDIS_PREFIX}t{uuid.uuid4().hex[:8]}:"
    agent = Agent(Fleet(settings.REDIS_URL, prefix), interval=0.02)
    names = ["configured"] + [f"new-{n}" for n in range(300)]
    try:
        # When the process meets them all at once
        made = [agent.breaker(name) for name in names]

        # Then each gets a row, the configured one applies its stored config,
        # and that config is in Redis for the other processes
        wait_until(
            lambda: Breaker.objects.filter(name__in=names).count() == len(names),
            timeout=10,
            what="all breakers registered",
        )
        wait_until(
            lambda: made[0].config.minimum_calls == 9,
            timeout=10,
            what="the stored config applied",
        )
        stored = wait_until(
            lambda: agent.fleet.load_config("configured"),
            timeout=10,
            what="the config shared in Redis",
        )
    finally:
        agent.stop()
    assert stored.minimum_calls == 9
    assert all(b.config == BreakerConfig() for b in made[1:])
