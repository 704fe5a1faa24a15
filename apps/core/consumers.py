"""Base for every console socket: authenticate, check the role, bind a trace."""

from typing import Any

import structlog
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core import trace
from apps.core.roles import VIEW_CONSOLE, roles_of

log = structlog.get_logger(__name__)

# Close codes in the private range 4000-4999, mirroring HTTP statuses.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    """Accepts only signed-in users with the viewer permission."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.trace = trace.new_trace()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await user.ahas_perm(VIEW_CONSOLE):
            log.info("socket.refused", user_id=user.pk, trace_id=self.trace.trace_id)
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()
        await self.on_authenticated()

    async def on_authenticated(self) -> None:
        """Called once the socket is accepted."""


class SessionConsumer(ConsoleConsumer):
    """``/ws/session/``: who the socket is, and a ping/pong clients use as a keepalive."""

    async def on_authenticated(self) -> None:
        user = self.scope["user"]
        roles = await roles_of(user)
        await self.send_json(
            {"type": "session", "user": user.get_username(), "roles": roles}
        )

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_json({"type": "error", "detail": "unknown message type"})
