"""The root NinjaAPI at /api/v1/: routers from each app, and the one error mapping.

Every error body has the shape ``{"detail", "code", "extra"}`` (STYLE rule 7).
"""

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from apps.breakers.api import router as breakers_router
from apps.components.api import router as components_router
from apps.core.api import router as core_router
from apps.core.auth import API_AUTH
from apps.core.exceptions import OpsError
from apps.flags.api import router as flags_router
from apps.healing.api import router as healing_router
from apps.metrics.api import router as metrics_router

api = NinjaAPI(
    title="opsconsole",
    version="1",
    description="Operations console REST API. Authenticate with `Authorization: Bearer <token>`.",
    urls_namespace="api-v1",
    auth=API_AUTH,
)
api.add_router("/", core_router)
api.add_router("/", flags_router)
api.add_router("/components", components_router)
api.add_router("/metrics", metrics_router)
api.add_router("/breakers", breakers_router)
api.add_router("/healing", healing_router)


def error_body(
    detail: str, code: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"detail": detail, "code": code, "extra": extra or {}}


@api.exception_handler(OpsError)
def _ops_error(request: HttpRequest, exc: OpsError) -> HttpResponse:
    return api.create_response(
        request, error_body(exc.message, exc.code, exc.extra), status=exc.status
    )


def _field_path(loc: list[str]) -> str:
    """``["body", "payload", "scopes", "0"]`` → ``scopes.0``: the client's own names.

    ninja prefixes the location ("body", "query", "path") and, for a body, the view's
    parameter name; services report plain field names, so the shapes agree.
    """
    if loc[:1] == ["body"] and len(loc) > 2:
        loc = loc[2:]
    elif len(loc) > 1:
        loc = loc[1:]
    return ".".join(loc) or "__all__"


@api.exception_handler(NinjaValidationError)
def _validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    fields: dict[str, list[str]] = {}
    for error in exc.errors:
        path = _field_path([str(part) for part in error.get("loc", ())])
        fields.setdefault(path, []).append(str(error.get("msg", "invalid")))
    detail = "; ".join(f"{path}: {' '.join(msgs)}" for path, msgs in fields.items())
    return api.create_response(
        request,
        error_body(detail, "validation_failed", {"fields": fields}),
        status=422,
    )


@api.exception_handler(AuthenticationError)
def _authentication_error(
    request: HttpRequest, exc: AuthenticationError
) -> HttpResponse:
    return api.create_response(
        request,
        error_body(
            "Authentication required: send Authorization: Bearer <token>",
            "not_authenticated",
        ),
        status=401,
    )


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return api.create_response(
        request, error_body(str(exc), "http_error"), status=exc.status_code
    )
