"""Channel kinds and their config schemas (secrets declared with ``secret()``)."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from pydantic import Field, field_validator

from apps.components.checkers.base import CheckConfig, secret


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


class _Posted(CheckConfig):
    # Incoming-webhook URLs carry their token in the path: the whole URL is secret.
    url: str = secret(pattern=r"^https?://[^\s/]+")
    timeout_seconds: float = Field(10.0, gt=0, le=60)


class WebhookConfig(_Posted):
    """JSON POSTed with ``X-Opsconsole-Signature: sha256=<HMAC of the body>``."""

    secret: str = secret(min_length=16)


class SlackConfig(_Posted):
    """Slack-compatible incoming webhook: ``{"text": ...}``."""


class EmailConfig(CheckConfig):
    to: list[str] = Field(min_length=1)
    from_email: str = ""

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            try:
                validate_email(address)
            except ValidationError as exc:
                raise ValueError(f"not an email address: {address!r}") from exc
        return value


CHANNEL_KINDS: dict[str, type[CheckConfig]] = {
    ChannelKind.WEBHOOK: WebhookConfig,
    ChannelKind.SLACK: SlackConfig,
    ChannelKind.EMAIL: EmailConfig,
}
