"""Console pages outside the model admins: the trace view."""

import re

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from apps.core.roles import VIEW_CONSOLE
from apps.core.trace_index import TRACE_ID_PATTERN, trace_items


def trace_page(request: HttpRequest, trace_id: str) -> HttpResponse:
    """What one trace touched, in time order (wrapped in ``admin_view``)."""
    if not request.user.has_perm(VIEW_CONSOLE):
        raise PermissionDenied
    if not re.fullmatch(TRACE_ID_PATTERN, trace_id):
        raise Http404("Not a trace id")
    context = {
        **admin.site.each_context(request),
        "title": f"Trace {trace_id}",
        "trace_id": trace_id,
        "items": trace_items(trace_id=trace_id),
    }
    return render(request, "admin/opsconsole/trace.html", context)
