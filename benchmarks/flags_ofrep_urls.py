"""The benchmark server's URLconf: the project's URLs plus two constant-JSON views.

``benchmarks/flags_ofrep.py`` serves this (not the shipped app) so the framework
ceiling runs in the same daphne process, through the same middleware, as OFREP.
The second view also looks the bearer token up as OFREP's auth does: how much of
the gap that lookup explains.
"""

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.core.services import token_authenticate
from opsconsole.urls import urlpatterns as project_urlpatterns

# What OFREP answers for the benchmark flag; the view still parses the request.
ANSWER = {"key": "bench.checkout", "value": True, "reason": "SPLIT", "variant": "on"}


@csrf_exempt
@require_POST
def constant(request: HttpRequest) -> HttpResponse:
    json.loads(request.body)
    return JsonResponse(ANSWER)


@csrf_exempt
@require_POST
def constant_with_token(request: HttpRequest) -> HttpResponse:
    token_authenticate(raw=request.headers["Authorization"].removeprefix("Bearer "))
    json.loads(request.body)
    return JsonResponse(ANSWER)


urlpatterns = [
    path("bench/constant", constant),
    path("bench/constant-with-token", constant_with_token),
    *project_urlpatterns,
]
