"""Root-level URLs of the components app: heartbeat pings and ``/health``."""

from django.urls import path

from apps.components import views

urlpatterns = [
    path("health", views.health, name="health"),
    path("ping/<uuid:ping_uuid>", views.ping, name="ping"),
    path("ping/<uuid:ping_uuid>/start", views.ping, {"action": "start"}),
    path("ping/<uuid:ping_uuid>/fail", views.ping, {"action": "fail"}),
    path("ping/<uuid:ping_uuid>/<int:exit_status>", views.ping),
]
