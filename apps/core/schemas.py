"""Shapes of the core API: who am I, API tokens, the audit log."""

from datetime import datetime
from typing import Any

from ninja import Field, Schema
from pydantic import AwareDatetime

from apps.core.models import ApiToken, Scope
from apps.core.selectors import token_status


class MeOut(Schema):
    username: str
    roles: list[str]
    scopes: list[str]
    token_prefix: str | None = Field(None, description="Set when a token was used.")


class TokenIn(Schema):
    name: str = Field(..., min_length=1, max_length=100)
    scopes: list[Scope] = Field(..., min_length=1)
    expires_at: AwareDatetime | None = Field(None, description="With a time zone.")


class TokenOut(Schema):
    prefix: str
    name: str
    user: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    status: str

    @staticmethod
    def resolve_user(obj: ApiToken) -> str:
        return obj.user.get_username()

    @staticmethod
    def resolve_status(obj: ApiToken) -> str:
        return token_status(obj)


class TokenCreatedOut(TokenOut):
    token: str = Field(..., description="The secret. It is shown only this once.")

    @staticmethod
    def resolve_token(obj: ApiToken, context: dict[str, Any]) -> str:
        return str(context["secret"])

    @classmethod
    def build(cls, token: ApiToken, raw: str) -> "TokenCreatedOut":
        """The response for a new token: the secret travels in the context only."""
        return cls.model_validate(token, context={"secret": raw})


class AuditFilter(Schema):
    action: str | None = Field(None, description="Exact action, e.g. token.created")
    target_type: str | None = Field(None, description="app_label.model_name")
    since: AwareDatetime | None = None


class AuditOut(Schema):
    id: int
    occurred_at: datetime
    actor_label: str
    source: str
    action: str
    target_type: str
    target_id: str
    target_label: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str
    trace_id: str


class SelftestStartedOut(Schema):
    task_id: str
    status_url: str


class SelftestOut(Schema):
    task_id: str
    status: str = Field(..., description="pending, succeeded or failed")
    worker: str | None = None
    trace_id: str | None = Field(None, description="The trace id the worker ran under.")
    queue_latency_ms: float | None = None
    error: str | None = None


class TraceItemOut(Schema):
    at: datetime
    kind: str = Field(..., description="audit, check, state, breaker, heal, ...")
    summary: str
    url: str = Field(..., description="The record's admin page, when it has one.")
