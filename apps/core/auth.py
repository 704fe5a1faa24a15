"""Who is calling the REST API: a bearer token, or a signed-in console user.

A request that sends ``Authorization`` is judged by that header alone, even when it
also carries a session cookie. Failures raise ``OpsError`` subclasses, which the root
API maps to the one error shape.
"""

from dataclasses import dataclass
from typing import cast

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from apps.core.exceptions import AuthenticationFailed, PermissionDenied
from apps.core.models import ApiToken
from apps.core.roles import allowed_scopes
from apps.core.services import token_authenticate


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a user, the scopes it may use now, and the token if it used one."""

    user: User
    scopes: frozenset[str]
    token: ApiToken | None = None


class TokenAuth(HttpBearer):
    """``Authorization: Bearer opc_…``; the token's scopes, capped by the user's role."""

    def __call__(self, request: HttpRequest) -> Principal | None:
        header = request.headers.get(self.header)
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.openapi_scheme or not raw.strip():
            raise AuthenticationFailed(
                "Malformed Authorization header: expected Bearer <token>.",
                code="token_malformed",
            )
        return self.authenticate(request, raw.strip())

    def authenticate(self, request: HttpRequest, token: str) -> Principal:
        api_token = token_authenticate(raw=token)
        # A role taken away later also takes the matching scope from old tokens.
        scopes = frozenset(api_token.scopes) & allowed_scopes(api_token.user)
        request.user = api_token.user
        return Principal(user=api_token.user, scopes=scopes, token=api_token)


class ConsoleSessionAuth(APIKeyCookie):
    """The admin session; scopes follow the user's role; CSRF on unsafe methods."""

    param_name = settings.SESSION_COOKIE_NAME

    def __call__(self, request: HttpRequest) -> Principal | None:
        if request.headers.get("Authorization") or not request.user.is_authenticated:
            return None
        if not getattr(request, "_ninja_csrf_exempt", False) and check_csrf(request):
            raise PermissionDenied(
                "CSRF check failed: send the X-CSRFToken header with session auth.",
                code="csrf_failed",
            )
        return self.authenticate(request, None)

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal:
        user = cast(User, request.user)  # signed in, checked by __call__
        return Principal(user=user, scopes=allowed_scopes(user))


API_AUTH = [TokenAuth(), ConsoleSessionAuth()]


def principal_of(request: HttpRequest) -> Principal:
    """The authenticated caller of this API request."""
    principal = getattr(request, "auth", None)
    if not isinstance(principal, Principal):
        raise AuthenticationFailed("Authentication required.")
    return principal


def require_scope(request: HttpRequest, scope: str) -> Principal:
    """The caller, if it holds ``scope``; else PermissionDenied naming it."""
    principal = principal_of(request)
    name = str(scope)  # a Scope member reads as its value
    if name not in principal.scopes:
        held = ", ".join(sorted(principal.scopes)) or "none"
        raise PermissionDenied(
            f"This needs the {name!r} scope (held: {held}).",
            code="scope_missing",
            extra={"scope": name},
        )
    return principal


def require_perm(request: HttpRequest, perm: str) -> Principal:
    """The caller, if its user has Django permission ``perm``; else PermissionDenied."""
    principal = principal_of(request)
    if not principal.user.has_perm(perm):
        raise PermissionDenied(
            f"This needs the permission {perm!r}.",
            code="permission_missing",
            extra={"permission": perm},
        )
    return principal
