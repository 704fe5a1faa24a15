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


# Room after the action's timeout to record its attempt: as long as the timeout
# itself and at least this (60 s of lock at the default 30 s timeout).
LOCK_MARGIN_MIN_SECONDS = 2.0
# Slack past timeout + lock TTL before a still-running attempt is declared lost.
LOST_MARGIN_SECONDS = 2.0


def heal_lock_ttl(*, timeout: float) -> float:
    """Seconds a component's heal lock lives: the action's timeout plus room to
    record the attempt, so a killed worker's lock frees itself soon after."""
    return timeout + max(LOCK_MARGIN_MIN_SECONDS, timeout)


def attempt_lost_after(*, timeout: float) -> float:
    """Seconds after its start when an attempt still ``running`` has lost its
    worker: a live one has finished by then, a dead one's lock has expired."""
    return timeout + heal_lock_ttl(timeout=timeout) + LOST_MARGIN_SECONDS
