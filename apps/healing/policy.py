"""Pure rules of a healing policy: the delay before the next attempt."""

import random


def backoff_delay(
    *,
    attempt: int,
    base: float,
    cap: float,
    jitter: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after attempt number ``attempt`` (1-based).

    ``base * 2**(attempt-1)``, capped at ``cap``, then shortened by up to ``jitter``
    of itself so a fleet of failing components does not retry in lockstep.
    """
    raw = min(cap, base * 2 ** (attempt - 1))
    draw = (rng or random).random()
    return raw * (1 - jitter * draw)
