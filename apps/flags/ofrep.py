"""OFREP, the OpenFeature Remote Evaluation Protocol, at /ofrep/v1/.

Answers come from this process's compiled snapshot, never the database. Bodies follow
the protocol's own shapes (not the REST API's ``{"detail", "code", "extra"}``): OFREP
providers read ``errorCode``. The bulk answer's ETag hashes the snapshot version with
the context, so a client holding it gets 304 until the flags (or its context) change.

Bearer tokens are checked as the REST API checks them, but a token that passed is
remembered by this process for ``AUTH_CACHE_SECONDS``: a provider sends the same
token on every evaluation, and its lookup (one query) was the whole gap between
OFREP and a constant view (benchmarks/flags_ofrep.py). So a token revoked, expired
or stripped of its role keeps reading flags for at most that long in a process that
accepted it just before; refusals are never remembered.
"""

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from pydantic import field_validator

import apps.flags
from apps.core.auth import ConsoleSessionAuth, Principal, TokenAuth, require_scope
from apps.core.exceptions import OpsError
from apps.core.models import Scope
from apps.core.services import token_hash
from apps.flags.engine import ErrorCode, Evaluation
from apps.flags.snapshot import current

AUTH_CACHE_SECONDS = 5.0
AUTH_CACHE_SIZE = 1024


class RecentTokenAuth(TokenAuth):
    """``TokenAuth`` that remembers each accepted token for ``seconds``."""

    def __init__(
        self,
        *,
        seconds: float = AUTH_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.seconds = seconds
        self.clock = clock
        # token hash -> (until, principal); dict reads and writes are atomic.
        self._accepted: dict[str, tuple[float, Principal]] = {}

    def authenticate(self, request: HttpRequest, token: str) -> Principal:
        key, now = token_hash(token), self.clock()
        remembered = self._accepted.get(key)
        if remembered is not None and remembered[0] > now:
            request.user = remembered[1].user
            return remembered[1]
        principal = super().authenticate(request, token)
        lifetime = self.seconds
        expires_at = principal.token.expires_at if principal.token else None
        if expires_at is not None:  # never remembered past its expiry
            lifetime = min(lifetime, (expires_at - timezone.now()).total_seconds())
        if len(self._accepted) >= AUTH_CACHE_SIZE:
            self._accepted.clear()
        self._accepted[key] = (now + lifetime, principal)
        return principal


token_auth = RecentTokenAuth()

ofrep = NinjaAPI(
    title="opsconsole OFREP",
    version="0.3.0",
    description="OpenFeature Remote Evaluation Protocol. `Authorization: Bearer <token>`.",
    urls_namespace="ofrep-v1",
    auth=[token_auth, ConsoleSessionAuth()],
)


class EvaluationRequest(Schema):
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("context")
    @classmethod
    def _targeting_key_is_text(cls, context: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(context.get("targetingKey", ""), str):
            raise ValueError("targetingKey must be a string")
        return context


@ofrep.post("/evaluate/flags/{key}")
def evaluate_flag(
    request: HttpRequest, key: str, payload: EvaluationRequest
) -> HttpResponse:
    """Evaluate one flag: 200, 404 FLAG_NOT_FOUND, or 400 with the error code."""
    require_scope(request, Scope.READ)
    result = apps.flags.evaluate(key, payload.context)
    return JsonResponse(_item(result), status=_status(result))


@ofrep.post("/evaluate/flags")
def evaluate_flags(request: HttpRequest, payload: EvaluationRequest) -> HttpResponse:
    """Evaluate every flag; 304 when ``If-None-Match`` holds the current ETag."""
    require_scope(request, Scope.READ)
    snapshot = current()
    etag = _etag(snapshot.version, payload.context)
    if _matches(request.headers.get("If-None-Match", ""), etag):
        response = HttpResponse(status=304)
    else:
        items = [
            _item(snapshot.evaluate(key, payload.context)) for key in snapshot.flags
        ]
        response = JsonResponse(
            {"flags": items, "metadata": {"version": snapshot.version}}
        )
    response["ETag"] = etag
    return response


def _item(result: Evaluation) -> dict[str, Any]:
    if result.failed:
        return {
            "key": result.key,
            "errorCode": str(result.error_code or "GENERAL"),
            "errorDetails": result.error_message,
        }
    item = {"key": result.key, "value": result.value, "reason": str(result.reason)}
    if result.variant is not None:
        item["variant"] = result.variant
    return item


def _status(result: Evaluation) -> int:
    if result.error_code is ErrorCode.FLAG_NOT_FOUND:
        return 404
    return 400 if result.failed else 200


def _etag(version: str, context: Mapping[str, Any]) -> str:
    canonical = json.dumps(context, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.blake2b(f"{version}\n{canonical}".encode(), digest_size=16)
    return f'"{digest.hexdigest()}"'


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110's weak comparison: any listed tag, with or without ``W/``, or ``*``."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


def _failure(request: HttpRequest, code: str, details: str) -> HttpResponse:
    """400 as the protocol shapes it; a single evaluation's failure names its key."""
    body = {"errorCode": code, "errorDetails": details}
    match = request.resolver_match
    if match is not None and "key" in match.kwargs:
        body = {"key": match.kwargs["key"], **body}
    return JsonResponse(body, status=400)


def _general(status: int, details: str) -> HttpResponse:
    response = JsonResponse({"errorDetails": details}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="ofrep"'
    return response


@ofrep.exception_handler(HttpError)
def _unparsable(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code != 400:
        return _general(exc.status_code, str(exc))
    return _failure(request, "PARSE_ERROR", str(exc))


@ofrep.exception_handler(NinjaValidationError)
def _invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    details = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ())[2:]) or 'body'}: "
        f"{error.get('msg', 'invalid')}"
        for error in exc.errors
    )
    return _failure(request, "INVALID_CONTEXT", details)


@ofrep.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _general(401, "Authentication required: send Authorization: Bearer <token>")


@ofrep.exception_handler(OpsError)
def _ops_error(request: HttpRequest, exc: OpsError) -> HttpResponse:
    return _general(exc.status, exc.message)
