"""Writes of the core app: the audit log and API tokens."""

import hashlib
import re
import secrets
import string
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import structlog
from celery import current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.postgres.aggregates import ArrayAgg
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models, transaction
from django.db.models import Q, Value
from django.utils import timezone

from apps import live
from apps.core.exceptions import (
    AuthenticationFailed,
    Conflict,
    PermissionDenied,
    ValidationFailed,
)
from apps.core.models import ApiToken, AuditEvent, Scope
from apps.core.roles import ROLES, allowed_scopes, remember_role_names
from apps.core.selectors import audit_feed_item
from apps.core.trace import current_trace_id

log = structlog.get_logger(__name__)

KEY_START = "opc_"
_VISIBLE_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
# 43 characters of base 62 carry 256 bits of entropy.
_SECRET_LENGTH = 43
_TOKEN_RE = re.compile(r"opc_[a-z0-9]{8}_[A-Za-z0-9]{43}")


def audit_record(
    *,
    actor: User | None,
    action: str,
    source: AuditEvent.Source,
    target: models.Model | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
) -> AuditEvent:
    """Append an audit event; must run inside the write's own transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record() must run inside the write's transaction")
    event = AuditEvent.objects.create(
        actor=actor,
        actor_label=_actor_label(actor, source),
        source=source,
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:200] if target is not None else "",
        before=before,
        after=after,
        reason=reason,
        trace_id=current_trace_id(),
    )
    item = dict(audit_feed_item(event))
    transaction.on_commit(lambda: live.publish("events", item, key=str(event.pk)))
    return event


def _actor_label(actor: User | None, source: str) -> str:
    if actor is not None:
        return actor.get_username()
    return "cli" if source == AuditEvent.Source.CLI else "system"


def token_hash(raw: str) -> str:
    """The SHA-256 hex digest stored for a token."""
    return hashlib.sha256(raw.encode()).hexdigest()


def token_validate(
    *,
    user: User,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    ceiling: frozenset[str] | None = None,
) -> None:
    """Raise ValidationFailed unless a token with these values may be created.

    ``ceiling`` caps the scopes further, e.g. by the scopes of the token asking.
    """
    fields: dict[str, list[str]] = {}
    if not name.strip():
        fields["name"] = ["Give the token a name."]
    scope_errors = _scope_errors(user=user, scopes=scopes, ceiling=ceiling)
    if scope_errors:
        fields["scopes"] = scope_errors
    if expires_at is not None and expires_at <= timezone.now():
        fields["expires_at"] = ["Must be in the future."]
    if fields:
        raise ValidationFailed(fields)


def _scope_errors(
    *, user: User, scopes: list[str], ceiling: frozenset[str] | None
) -> list[str]:
    if not scopes:
        return ["Choose at least one scope."]
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        known = ", ".join(Scope.values)
        return [f"Unknown scope(s): {', '.join(unknown)} (known: {known})."]
    allowed = allowed_scopes(user)
    if ceiling is not None:
        allowed &= ceiling
    above = [
        scope for scope in Scope.values if scope in scopes and scope not in allowed
    ]
    if above:
        granted = ", ".join(s for s in Scope.values if s in allowed) or "none"
        return [
            f"Not allowed for {user.get_username()}: {', '.join(above)} "
            f"(allowed: {granted})."
        ]
    return []


@transaction.atomic
def token_create(
    *,
    user: User,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    actor: User | None,
    source: AuditEvent.Source,
    ceiling: frozenset[str] | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns it with its secret, which is shown once."""
    _check_may_create_for(actor=actor, user=user)
    token_validate(
        user=user, name=name, scopes=scopes, expires_at=expires_at, ceiling=ceiling
    )
    prefix, raw = _token_new_key()
    token = ApiToken(
        user=user,
        name=name.strip(),
        prefix=prefix,
        key_hash=token_hash(raw),
        scopes=[scope for scope in Scope.values if scope in scopes],
        expires_at=expires_at,
    )
    _full_clean(token)
    token.save()
    audit_record(
        actor=actor,
        action="token.created",
        source=source,
        target=token,
        after=_token_snapshot(token),
    )
    _log_on_commit("token.created", token)
    return token, raw


def _check_may_create_for(*, actor: User | None, user: User) -> None:
    # A token acts as its user, so minting one for someone else is impersonation.
    if actor is not None and actor.pk != user.pk and not actor.is_superuser:
        raise PermissionDenied(
            "Only a superuser may create tokens for another user.",
            code="token_for_other_user",
        )


def _token_new_key() -> tuple[str, str]:
    """A fresh (prefix, raw token) pair whose prefix is not taken yet."""
    while True:
        visible = "".join(secrets.choice(_VISIBLE_ALPHABET) for _ in range(8))
        secret = "".join(
            secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LENGTH)
        )
        prefix = KEY_START + visible
        if not ApiToken.objects.filter(prefix=prefix).exists():
            return prefix, f"{prefix}_{secret}"


def _token_snapshot(token: ApiToken) -> dict[str, Any]:
    """What the audit keeps of a token: never the secret or its hash."""
    return {
        "prefix": token.prefix,
        "name": token.name,
        "user": token.user.get_username(),
        "scopes": list(token.scopes),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
    }


@transaction.atomic
def token_revoke(
    *, token: ApiToken, actor: User | None, source: AuditEvent.Source, reason: str = ""
) -> ApiToken:
    """Revoke ``token`` now; revoking it a second time is a Conflict."""
    locked = (
        ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
    )
    if locked.revoked_at is not None:
        raise Conflict(
            f"Token {locked.prefix} was already revoked at "
            f"{locked.revoked_at.isoformat()}.",
            code="token_already_revoked",
        )
    locked.revoked_at = timezone.now()
    locked.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor,
        action="token.revoked",
        source=source,
        target=locked,
        before={"revoked_at": None},
        after={"revoked_at": locked.revoked_at.isoformat()},
        reason=reason,
    )
    _log_on_commit("token.revoked", locked)
    return locked


def token_authenticate(*, raw: str) -> ApiToken:
    """The usable token ``raw`` names, or AuthenticationFailed saying why not."""
    if not _TOKEN_RE.fullmatch(raw):
        raise _auth_failed(
            "Malformed API token: expected opc_<8 characters>_<secret>.",
            "token_malformed",
        )
    # Looking the hash up by its unique index compares no secret in Python. The
    # user's role groups come in the same query: the API's hot path is one query.
    token = (
        ApiToken.objects.select_related("user")
        .annotate(
            role_names=ArrayAgg(
                "user__groups__name",
                filter=Q(user__groups__name__in=ROLES),
                default=Value([]),
            )
        )
        .filter(key_hash=token_hash(raw))
        .first()
    )
    if token is None:
        raise _auth_failed("Unknown API token.", "token_unknown")
    remember_role_names(token.user, token.role_names)
    now = timezone.now()
    _check_usable(token, now)
    _token_touch(token, now)
    return token


def _check_usable(token: ApiToken, now: datetime) -> None:
    if token.revoked_at is not None:
        raise _auth_failed(
            f"API token {token.prefix} has been revoked.", "token_revoked", token
        )
    if token.expires_at is not None and token.expires_at <= now:
        raise _auth_failed(
            f"API token {token.prefix} expired at {token.expires_at.isoformat()}.",
            "token_expired",
            token,
        )
    if not token.user.is_active:
        raise _auth_failed(
            f"The user of API token {token.prefix} is inactive.",
            "token_user_inactive",
            token,
        )


def _auth_failed(
    message: str, code: str, token: ApiToken | None = None
) -> AuthenticationFailed:
    log.info("token.rejected", code=code, token_id=token.pk if token else None)
    return AuthenticationFailed(message, code=code)


def _token_touch(token: ApiToken, now: datetime) -> None:
    """Record use at most once per OPSCONSOLE_TOKEN_TOUCH_SECONDS."""
    cutoff = now - timedelta(seconds=settings.OPSCONSOLE_TOKEN_TOUCH_SECONDS)
    if token.last_used_at is not None and token.last_used_at > cutoff:
        return
    # Conditional so that concurrent requests with the same token write once.
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=cutoff)
    if ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now):
        token.last_used_at = now


def _full_clean(instance: models.Model) -> None:
    """``full_clean()`` with Django's errors turned into ValidationFailed."""
    try:
        instance.full_clean()
    except DjangoValidationError as exc:
        fields = {name: list(msgs) for name, msgs in exc.message_dict.items()}
        raise ValidationFailed(fields) from exc


def _log_on_commit(event: str, token: ApiToken) -> None:
    token_id, user_id = token.pk, token.user_id
    transaction.on_commit(
        lambda: log.info(event, token_id=token_id, user_id=user_id, prefix=token.prefix)
    )


SELFTEST_TASK = "core.selftest"


def selftest_request(*, actor: User, source: AuditEvent.Source) -> str:
    """Send a self-test through broker, worker and database; returns its task id."""
    task_id = str(uuid.uuid4())
    requested_at = time.time()
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="system.selftest_requested",
            source=source,
            after={"task_id": task_id},
        )
        transaction.on_commit(
            lambda: current_app.send_task(
                SELFTEST_TASK, args=[requested_at], task_id=task_id
            )
        )
    return task_id


def selftest_complete(
    *, task_id: str, requested_at: float, worker: str
) -> dict[str, Any]:
    """Record, in the worker, that the self-test arrived; its report is the task result."""
    report = {
        "worker": worker,
        "trace_id": current_trace_id(),
        "queue_latency_ms": round((time.time() - requested_at) * 1000, 1),
    }
    with transaction.atomic():
        audit_record(
            actor=None,
            action="system.selftest_completed",
            source=AuditEvent.Source.TASK,
            after={"task_id": task_id, **report},
        )
    log.info("selftest.completed", **report)
    return report
