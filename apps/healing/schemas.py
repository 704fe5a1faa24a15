"""ninja In/Out shapes of the healing API."""

from datetime import datetime
from typing import Any

from ninja import Field, Schema

from apps.healing.models import HealingAttempt, HealingPolicy
from apps.healing.selectors import policy_config_public


class PolicyOut(Schema):
    component: str
    action: str
    config: dict[str, Any]
    max_attempts: int
    backoff_seconds: float
    backoff_max_seconds: float
    jitter: float
    cooldown_seconds: int
    timeout_seconds: float
    paused: bool
    dry_run: bool
    episode: str
    episode_attempts: int
    next_attempt_at: datetime | None
    last_healed_at: datetime | None

    @classmethod
    def build(cls, policy: HealingPolicy) -> "PolicyOut":
        fields = {name: getattr(policy, name) for name in cls.model_fields}
        fields["component"] = policy.component.slug
        fields["config"] = policy_config_public(policy=policy)
        return cls(**fields)


class PolicyIn(Schema):
    """A whole policy; shape only here, the action's config is checked by its schema."""

    action: str
    config: dict[str, Any] = {}
    max_attempts: int = Field(3, ge=1, le=100)
    backoff_seconds: float = Field(30.0, gt=0)
    backoff_max_seconds: float = Field(600.0, gt=0)
    jitter: float = Field(0.2, ge=0, lt=1)
    cooldown_seconds: int = Field(300, ge=0)
    timeout_seconds: float = Field(30.0, gt=0, le=45)
    paused: bool = False
    dry_run: bool = False
    reason: str = Field("", max_length=2000)


class AttemptOut(Schema):
    id: int
    component: str
    number: int
    action: str
    dry_run: bool
    outcome: str
    output: str
    reason: str
    started_at: datetime
    finished_at: datetime | None
    trace_id: str

    @classmethod
    def build(cls, attempt: HealingAttempt) -> "AttemptOut":
        fields = {name: getattr(attempt, name) for name in cls.model_fields}
        fields["component"] = attempt.component.slug
        return cls(**fields)


class ReasonIn(Schema):
    reason: str = Field(..., min_length=1, max_length=2000)
