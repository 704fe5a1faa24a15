"""WebSocket routes; each app's consumers are added here."""

from django.urls import path

from apps.core.consumers import SessionConsumer
from apps.live.consumers import LiveConsumer

websocket_urlpatterns = [
    path("ws/session/", SessionConsumer.as_asgi()),
    path("ws/live/", LiveConsumer.as_asgi()),
]
