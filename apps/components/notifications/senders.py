"""Sending one message through one channel: webhook, Slack-compatible, email.

Each sender returns a ``Delivery``; it never raises for a failure of the far side.
"""

import hashlib
import hmac
import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.mail import send_mail

from apps.components.checkers.base import MASK, CheckConfig, secret_fields
from apps.components.notifications.kinds import (
    CHANNEL_KINDS,
    ChannelKind,
    EmailConfig,
    SlackConfig,
    WebhookConfig,
)

SIGNATURE_HEADER = "X-Opsconsole-Signature"


@dataclass(frozen=True, slots=True)
class Message:
    """What is sent: the webhook's JSON, and the text of Slack and email."""

    notification_id: int
    subject: str
    text: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one attempt; ``retryable`` for transport errors and 5xx."""

    sent: bool
    retryable: bool = False
    response_code: int | None = None
    error: str = ""


def signature(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the body's HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(*, kind: str, config: dict[str, Any], message: Message) -> Delivery:
    """Send ``message`` through a channel of ``kind`` with ``config``."""
    schema = CHANNEL_KINDS[kind]
    parsed = schema.model_validate(config)
    delivery = _SENDERS[kind](parsed, message)
    if not delivery.error:
        return delivery
    return Delivery(
        delivery.sent,
        delivery.retryable,
        delivery.response_code,
        _scrub(delivery.error, parsed, schema),
    )


def _webhook(config: Any, message: Message) -> Delivery:
    assert isinstance(config, WebhookConfig)  # noqa: S101 - chosen by kind
    body = json.dumps(message.payload, separators=(",", ":")).encode()
    headers = {
        SIGNATURE_HEADER: signature(config.secret, body),
        "X-Opsconsole-Delivery": str(message.notification_id),
    }
    return _post(config.url, body, headers, config.timeout_seconds)


def _slack(config: Any, message: Message) -> Delivery:
    assert isinstance(config, SlackConfig)  # noqa: S101 - chosen by kind
    body = json.dumps({"text": message.text}).encode()
    return _post(config.url, body, {}, config.timeout_seconds)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Delivery:
    request = urllib.request.Request(  # noqa: S310 - http(s) only, by the schema
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "opsconsole"}
        | headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Delivery(True, response_code=response.status)
    except urllib.error.HTTPError as exc:
        retry = exc.code >= 500 or exc.code == 429
        return Delivery(False, retry, exc.code, f"HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return Delivery(False, True, None, _describe(exc))


def _email(config: Any, message: Message) -> Delivery:
    assert isinstance(config, EmailConfig)  # noqa: S101 - chosen by kind
    try:
        send_mail(message.subject, message.text, config.from_email or None, config.to)
    except (smtplib.SMTPException, OSError) as exc:
        return Delivery(False, True, None, _describe(exc))
    return Delivery(True)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _scrub(text: str, config: CheckConfig, schema: type[CheckConfig]) -> str:
    """``text`` without the config's secret values (an error may quote a URL)."""
    for name in secret_fields(schema):
        value = getattr(config, name)
        if isinstance(value, str) and value:
            text = text.replace(value, MASK)
    return text


_SENDERS: dict[str, Callable[[Any, Message], Delivery]] = {
    ChannelKind.WEBHOOK: _webhook,
    ChannelKind.SLACK: _slack,
    ChannelKind.EMAIL: _email,
}
