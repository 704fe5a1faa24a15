"""The live dashboard page: a shell the browser fills from /ws/live/."""

from django.contrib import admin
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse_lazy

from apps.core.roles import VIEW_CONSOLE


@login_required(login_url=reverse_lazy("admin:login"))
@permission_required(VIEW_CONSOLE, raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    context = {**admin.site.each_context(request), "title": "Live dashboard"}
    return render(request, "live/dashboard.html", context)
