"""Reads of the healing app."""

from typing import Any

from django.db.models import QuerySet

from apps.components.checkers.base import secret_fields
from apps.components.selectors import MASK
from apps.core.exceptions import NotFound
from apps.healing.actions import KINDS
from apps.healing.models import Episode, HealingAttempt, HealingPolicy


def policy_get(*, slug: str) -> HealingPolicy:
    """The healing policy of component ``slug``, or NotFound."""
    policy = (
        HealingPolicy.objects.select_related("component")
        .filter(component__slug=slug)
        .first()
    )
    if policy is None:
        raise NotFound(f"No healing policy for {slug!r}.", code="policy_not_found")
    return policy


def policy_list() -> QuerySet[HealingPolicy]:
    """Every healing policy with its component, by component slug."""
    return HealingPolicy.objects.select_related("component").order_by("component__slug")


def attempt_list(*, slug: str | None = None) -> QuerySet[HealingAttempt]:
    """Healing attempts newest first, of component ``slug`` when given."""
    attempts = HealingAttempt.objects.select_related("component")
    return attempts.filter(component__slug=slug) if slug else attempts


def policy_config_public(*, policy: HealingPolicy) -> dict[str, Any]:
    """The policy's action config with every secret field masked: safe to render."""
    kind = KINDS.get(policy.action)
    hidden = secret_fields(kind.config_model) if kind else frozenset()
    return {
        key: MASK if key in hidden and value else value
        for key, value in policy.config.items()
    }


def healing_live() -> dict[str, Any]:
    """The dashboard's healing snapshot: components whose healing is under way or
    needs a human."""
    policies = policy_list().exclude(episode=Episode.IDLE)
    return {
        "episodes": [
            {
                "slug": policy.component.slug,
                "episode": policy.episode,
                "attempts": policy.episode_attempts,
                "max_attempts": policy.max_attempts,
                "paused": policy.paused,
                "next_attempt_at": policy.next_attempt_at.isoformat()
                if policy.next_attempt_at
                else None,
            }
            for policy in policies
        ]
    }
