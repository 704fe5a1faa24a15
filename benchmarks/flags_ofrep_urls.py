"""The benchmark server's URLconf: the project's URLs plus two constant-JSON views.

``benchmarks/flags_ofrep.py`` serves this (not the shipped app) so the framework
ceiling runs in the same daphne process, through the same middleware, as OFREP.
The second view also authenticates the bearer token exactly as OFREP does (the
token with its user's roles in one query, remembered per token for a few seconds):
how much of the gap that explains.
"""

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.flags.ofrep import token_auth
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
def constant_with_auth(request: HttpRequest) -> HttpResponse:
    token_auth(request)
    json.loads(request.body)
    return JsonResponse(ANSWER)


urlpatterns = [
    path("bench/constant", constant),
    path("bench/constant-with-auth", constant_with_auth),
    *project_urlpatterns,
]
