"""Backoff between attempts (exponential, capped, jittered); lock TTL and the limit
after which a running attempt is lost, both derived from the action's timeout."""

import random

import pytest

from apps.healing.policy import attempt_lost_after, backoff_delay, heal_lock_ttl


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 8])
def test_backoff_delay__many_draws__within_jitter_of_capped_exponential(attempt):
    rng = random.Random(attempt)
    raw = min(300.0, 10.0 * 2 ** (attempt - 1))

    delays = [
        backoff_delay(attempt=attempt, base=10, cap=300, jitter=0.25, rng=rng)
        for _ in range(500)
    ]

    assert all(raw * 0.75 <= delay <= raw for delay in delays)
    assert max(delays) - min(delays) > raw * 0.2  # the jitter really spreads them


def test_backoff_delay__no_jitter__exact_doubling_until_the_cap():
    delays = [backoff_delay(attempt=n, base=5, cap=30, jitter=0) for n in range(1, 6)]
    assert delays == [5, 10, 20, 30, 30]


@pytest.mark.parametrize(
    ("timeout", "ttl", "lost"), [(30, 60, 92), (2, 4, 8), (0.5, 2.5, 5)]
)
def test_heal_lock_ttl__action_timeout__ttl_and_lost_limit_scale_with_it(
    timeout, ttl, lost
):
    assert heal_lock_ttl(timeout=timeout) == ttl
    assert attempt_lost_after(timeout=timeout) == lost
