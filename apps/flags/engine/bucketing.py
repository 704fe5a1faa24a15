"""Unleash-compatible bucketing: the same user lands in the same bucket as with Unleash."""

import mmh3

# Unleash's seed for choosing a variant; rollouts use seed 0.
VARIANT_SEED = 86028157


def normalized_hash(
    value: str, group_id: str, *, normalizer: int = 100, seed: int = 0
) -> int:
    """Unleash's normalizedHash: murmur3 x86 32 (unsigned) of ``group:value``, 1..n."""
    return mmh3.hash(f"{group_id}:{value}", seed, signed=False) % normalizer + 1


def pick_weighted(
    value: str, group_id: str, cumulative: tuple[tuple[str, int], ...], total: int
) -> str:
    """The variant whose cumulative weight first reaches the value's target (Unleash)."""
    target = normalized_hash(value, group_id, normalizer=total, seed=VARIANT_SEED)
    for name, upto in cumulative:
        if target <= upto:
            return name
    return cumulative[-1][0]
