"""``manage.py tokens create|list|revoke``: API tokens from the shell (audited as cli)."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.core.cli import add_format_argument, iso, render_rows
from apps.core.exceptions import OpsError
from apps.core.models import ApiToken, AuditEvent
from apps.core.selectors import token_get, token_list, token_status, user_get
from apps.core.services import token_create, token_revoke

COLUMNS = [
    "prefix",
    "name",
    "user",
    "scopes",
    "status",
    "created_at",
    "expires_at",
    "last_used_at",
]


class Command(BaseCommand):
    help = "Create, list and revoke API tokens. A new token is printed only once."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a token; prints it last.")
        create.add_argument("--user", required=True, help="username of the owner")
        create.add_argument("--scopes", required=True, help="e.g. read,write")
        create.add_argument("--expires-days", type=int, default=None)
        create.add_argument("--name", default="cli")
        listing = sub.add_parser("list", help="List tokens (never their secrets).")
        listing.add_argument("--user", default=None)
        add_format_argument(listing)
        revoke = sub.add_parser("revoke", help="Revoke the token with this prefix.")
        revoke.add_argument("prefix")
        revoke.add_argument("--reason", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        handler: dict[str, Callable[..., None]] = {
            "create": self._create,
            "list": self._list,
            "revoke": self._revoke,
        }
        try:
            handler[options["action"]](**options)
        except OpsError as exc:
            raise CommandError(exc.message) from exc

    def _create(
        self, *, user: str, scopes: str, expires_days: int | None, name: str, **_: Any
    ) -> None:
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be at least 1.")
        expires_at = (
            timezone.now() + timedelta(days=expires_days) if expires_days else None
        )
        token, raw = token_create(
            user=user_get(username=user),
            name=name,
            scopes=[scope.strip() for scope in scopes.split(",") if scope.strip()],
            expires_at=expires_at,
            actor=None,
            source=AuditEvent.Source.CLI,
        )
        expiry = token.expires_at.isoformat() if token.expires_at else "never"
        self.stdout.write(
            f"Created {token.prefix} ({token.name}) for {user}, scopes "
            f"{','.join(token.scopes)}, expires {expiry}. It is shown only this once:"
        )
        self.stdout.write(raw)

    def _list(self, *, user: str | None, output_format: str, **_: Any) -> None:
        owner = user_get(username=user) if user else None
        rows = [_row(token) for token in token_list(user=owner)]
        self.stdout.write(
            render_rows(rows, columns=COLUMNS, output_format=output_format)
        )

    def _revoke(self, *, prefix: str, reason: str, **_: Any) -> None:
        token = token_revoke(
            token=token_get(prefix=prefix),
            actor=None,
            source=AuditEvent.Source.CLI,
            reason=reason,
        )
        self.stdout.write(f"Revoked {token.prefix} ({token.name}) of {token.user}.")


def _row(token: ApiToken) -> dict[str, str]:
    """One token as text: no secret, no hash."""
    return {
        "prefix": token.prefix,
        "name": token.name,
        "user": token.user.get_username(),
        "scopes": ",".join(token.scopes),
        "status": token_status(token),
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "last_used_at": iso(token.last_used_at),
    }
