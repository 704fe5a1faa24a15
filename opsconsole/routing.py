"""WebSocket routes; each app's consumers are added here."""

from django.urls import path

from apps.core.consumers import SessionConsumer

websocket_urlpatterns = [
    path("ws/session/", SessionConsumer.as_asgi()),
]
