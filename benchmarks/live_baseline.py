"""The baseline of benchmarks/live_fanout.py: plain Channels ``group_send`` fan-out.

Served by its own daphne (``benchmarks.live_baseline:application``), never by the
shipped app. The same door as ``/ws/live/`` (allowed origin, Django session, a
signed-in user), then the textbook Channels pattern: on ``subscribe`` the socket joins
a group on the channel layer (channels-redis, the project's ``CHANNEL_LAYERS``) and is
answered with an empty snapshot; the publisher ``group_send``s each delta, already
encoded as a ``deltas`` frame, and every consumer forwards it as it comes. No
coalescing, no bounded outbox: one channel-layer message per client per delta.
"""

import json
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "bench-live-events"
EVENT_TYPE = "live.delta"  # handled by BaselineConsumer.live_delta


class BaselineConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        await self.accept()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        message = json.loads(text_data or "{}")
        if message.get("type") == "subscribe":
            await self.channel_layer.group_add(GROUP, self.channel_name)
            snapshot = {"events": {"seq": 0, "data": None}}
            await self.send(
                json.dumps(
                    {"type": "snapshot", "reason": "subscribe", "topics": snapshot}
                )
            )

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def live_delta(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                URLRouter([path("ws/live/", BaselineConsumer.as_asgi())])
            )
        ),
    }
)
