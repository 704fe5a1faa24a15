"""Shapes of the flags API. Meaning (variants, rules, relations) is checked by services."""

from datetime import datetime
from typing import Any

from ninja import Field, Schema
from pydantic import AwareDatetime

from apps.flags.models import (
    ChangeRequest,
    Flag,
    FlagType,
    FlagVersion,
    ScheduledChange,
)
from apps.flags.selectors import change_request_approvers, flag_usage_get


class Reasoned(Schema):
    reason: str = Field(
        "", max_length=2000, description="Audited; protected flags need one."
    )


class FlagFields(Reasoned):
    """Every writable field; PUT sends all of them, POST adds ``key``."""

    name: str = Field(..., min_length=1, max_length=200)
    description: str = ""
    type: FlagType = FlagType.BOOLEAN
    variants: dict[str, Any] = Field(..., description="variant name → value")
    schema_: dict[str, Any] | None = Field(None, alias="json_schema")
    enabled: bool = False
    default_variant: str = Field(..., description="Served when on and no rule matches.")
    off_variant: str = Field(..., description="Served when off.")
    rules: list[dict[str, Any]] = []
    requires: list[dict[str, Any]] = []
    conflicts: list[str] = []
    tags: list[str] = []
    owner: str = ""
    protected: bool = False
    requires_approval: bool = False
    expires_at: AwareDatetime | None = None
    archived: bool = False


class FlagCreateIn(FlagFields):
    key: str = Field(..., min_length=1, max_length=150)


class FlagPatchIn(Reasoned):
    """Only the fields sent change."""

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = None
    type: FlagType | None = None
    variants: dict[str, Any] | None = None
    schema_: dict[str, Any] | None = Field(None, alias="json_schema")
    enabled: bool | None = None
    default_variant: str | None = None
    off_variant: str | None = None
    rules: list[dict[str, Any]] | None = None
    requires: list[dict[str, Any]] | None = None
    conflicts: list[str] | None = None
    tags: list[str] | None = None
    owner: str | None = None
    protected: bool | None = None
    requires_approval: bool | None = None
    expires_at: AwareDatetime | None = None
    archived: bool | None = None


def changes_of(payload: Reasoned, *, partial: bool) -> dict[str, Any]:
    """The flag fields a payload sets (PATCH: only those sent), without the reason."""
    return payload.model_dump(
        by_alias=True, exclude_unset=partial, exclude={"reason", "key"}
    )


class ToggleIn(Reasoned):
    enabled: bool


class FlagListFilter(Schema):
    tag: str = Field("", description="Only flags with this tag.")
    include_archived: bool = False


class FlagOut(Schema):
    key: str
    name: str
    description: str
    type: str
    variants: dict[str, Any]
    # ``json_schema`` would shadow pydantic's method; routes dump by alias.
    schema_: dict[str, Any] | None = Field(..., alias="json_schema")
    enabled: bool
    default_variant: str
    off_variant: str
    rules: list[dict[str, Any]]
    requires: list[dict[str, Any]]
    conflicts: list[str]
    tags: list[str]
    owner: str
    protected: bool
    requires_approval: bool
    expires_at: datetime | None
    archived: bool
    version: int
    created_at: datetime
    updated_at: datetime
    evaluations: int = Field(..., description="Evaluations counted so far.")
    last_evaluated_at: datetime | None = Field(
        ..., description="When last evaluated (to ~30 s); null: never."
    )

    @staticmethod
    def resolve_evaluations(obj: Flag) -> int:
        return flag_usage_get(flag=obj).evaluations

    @staticmethod
    def resolve_last_evaluated_at(obj: Flag) -> datetime | None:
        return flag_usage_get(flag=obj).last_evaluated_at


class FlagVersionOut(Schema):
    version: int
    created_at: datetime
    actor: str | None
    reason: str
    snapshot: dict[str, Any]

    @staticmethod
    def resolve_actor(obj: FlagVersion) -> str | None:
        return obj.actor.get_username() if obj.actor else None


class SegmentIn(Reasoned):
    name: str = Field(..., min_length=1, max_length=200)
    description: str = ""
    conditions: list[dict[str, Any]] = []


class SegmentOut(Schema):
    key: str
    name: str
    description: str
    conditions: list[dict[str, Any]]
    updated_at: datetime


class EvaluateIn(Schema):
    context: dict[str, Any] = Field(default_factory=dict)


class EvaluationOut(Schema):
    key: str
    value: Any
    variant: str | None
    reason: str
    error_code: str | None
    error_message: str


class ChangeRequestIn(Reasoned):
    changes: dict[str, Any] = Field(
        ..., description="The flag fields to set, as in PATCH /flags/{key}."
    )


class DecisionIn(Schema):
    reason: str = Field(..., min_length=1, max_length=2000)


class ChangeRequestOut(Schema):
    id: int
    flag: str
    action: str
    changes: dict[str, Any]
    reason: str
    status: str
    revision: int
    author: str | None
    revised_by: str | None
    approvers: list[str]
    decided_by: str | None
    decision_reason: str
    applied_version: int | None
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_flag(obj: ChangeRequest) -> str:
        return obj.flag.key

    @staticmethod
    def resolve_author(obj: ChangeRequest) -> str | None:
        return obj.author.get_username() if obj.author else None

    @staticmethod
    def resolve_revised_by(obj: ChangeRequest) -> str | None:
        return obj.revised_by.get_username() if obj.revised_by else None

    @staticmethod
    def resolve_decided_by(obj: ChangeRequest) -> str | None:
        return obj.decided_by.get_username() if obj.decided_by else None

    @staticmethod
    def resolve_approvers(obj: ChangeRequest) -> list[str]:
        return change_request_approvers(request=obj)


class ScheduledChangeIn(Reasoned):
    changes: dict[str, Any] = Field(
        ..., description='The flag fields to set then, e.g. {"enabled": true}.'
    )
    run_at: AwareDatetime


class ScheduledChangeOut(Schema):
    id: int
    flag: str
    action: str
    changes: dict[str, Any]
    run_at: datetime
    reason: str
    author: str | None
    status: str
    outcome: str
    created_at: datetime
    finished_at: datetime | None

    @staticmethod
    def resolve_flag(obj: ScheduledChange) -> str:
        return obj.flag.key

    @staticmethod
    def resolve_author(obj: ScheduledChange) -> str | None:
        return obj.author.get_username() if obj.author else None
