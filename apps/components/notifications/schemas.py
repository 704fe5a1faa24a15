"""Shapes of the notifications API. Config goes out only through the masking selector."""

from datetime import datetime
from typing import Any

from ninja import Field, Schema

from apps.components.notifications.models import Notification, NotificationChannel
from apps.components.notifications.selectors import channel_config_public


class ChannelOut(Schema):
    id: int
    name: str
    kind: str
    config: dict[str, Any] = Field(..., description="Secrets are masked.")
    enabled: bool
    components: list[str]

    @staticmethod
    def resolve_config(obj: NotificationChannel) -> dict[str, Any]:
        return channel_config_public(channel=obj)

    @staticmethod
    def resolve_components(obj: NotificationChannel) -> list[str]:
        return [component.slug for component in obj.components.all()]


class NotificationFilter(Schema):
    component: str | None = Field(None, description="A component's slug.")
    channel: str | None = Field(None, description="A channel's name.")
    status: str | None = Field(None, description="pending, sent, retrying, failed …")


class NotificationOut(Schema):
    id: int
    channel: str
    event: str = Field(..., description="transition, escalation or test.")
    component: str | None = Field(None, description="Absent for a test send.")
    subject: str = Field(..., description="Events other than transitions.")
    from_state: str | None = None
    to_state: str | None = None
    status: str
    attempts: int
    response_code: int | None
    last_error: str
    created_at: datetime
    sent_at: datetime | None

    @staticmethod
    def resolve_channel(obj: Notification) -> str:
        return obj.channel.name

    @staticmethod
    def resolve_component(obj: Notification) -> str | None:
        return obj.component.slug if obj.component else None

    @staticmethod
    def resolve_from_state(obj: Notification) -> str | None:
        return obj.state_change.from_state if obj.state_change else None

    @staticmethod
    def resolve_to_state(obj: Notification) -> str | None:
        return obj.state_change.to_state if obj.state_change else None


class TestQueuedOut(Schema):
    id: int
    status: str
