"""Backoff between attempts: exponential, capped, with jitter inside its bounds."""

import random

import pytest

from apps.healing.policy import backoff_delay


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
