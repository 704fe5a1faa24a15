from django.contrib import admin
from django.urls import include, path

from apps.core import probes
from apps.core.views import trace_page
from apps.flags.ofrep import ofrep
from apps.live.views import dashboard
from apps.metrics.views import metrics_endpoint
from opsconsole.api import api

admin.site.site_header = "opsconsole"
admin.site.site_title = "opsconsole"
admin.site.index_title = "Operations console"

urlpatterns = [
    path("livez", probes.livez, name="livez"),
    path("readyz", probes.readyz, name="readyz"),
    path("metrics", metrics_endpoint, name="metrics"),
    path("api/v1/", api.urls),
    path("ofrep/v1/", ofrep.urls),
    path("dashboard/", dashboard, name="dashboard"),
    path(
        "admin/trace/<str:trace_id>/",
        admin.site.admin_view(trace_page),
        name="trace",
    ),
    path("admin/", admin.site.urls),
    # Heartbeat pings and /health: unauthenticated by design.
    path("", include("apps.components.urls")),
]
