"""``/metrics``: the console's own Prometheus exposition (see exposition.py)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from apps.core.auth import TokenAuth
from apps.core.exceptions import AuthenticationFailed, OpsError, PermissionDenied
from apps.core.models import Scope
from apps.metrics.exposition import exposition_render
from opsconsole.api import error_body


@never_cache
@require_GET
def metrics_endpoint(request: HttpRequest) -> HttpResponse:
    """The exposition; a bearer token with the read scope unless the setting opens it."""
    if not settings.OPSCONSOLE_METRICS_PUBLIC:
        try:
            _authorise(request)
        except OpsError as exc:
            response = JsonResponse(
                error_body(exc.message, exc.code), status=exc.status
            )
            if exc.status == 401:
                response["WWW-Authenticate"] = 'Bearer realm="opsconsole"'
            return response
    return HttpResponse(exposition_render(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _authorise(request: HttpRequest) -> None:
    principal = TokenAuth()(request)
    if principal is None:
        raise AuthenticationFailed("Send Authorization: Bearer <token> (read scope).")
    if Scope.READ.value not in principal.scopes:
        raise PermissionDenied("This needs the 'read' scope.", code="scope_missing")
