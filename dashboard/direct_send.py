"""Hand websocket consumers the server's own `send`, for the hub's fan-out.

Channels' session middleware wraps every `send` to check whether the session needs saving
(measured: about a third of the per-delivery cost of a hub frame). A websocket frame never
changes the session, so the hub writes deltas through the unwrapped `send`; the handshake and
everything a consumer sends itself still go through the full middleware stack.
"""

from __future__ import annotations

from typing import Any


class DirectSendMiddleware:
    """Outermost websocket middleware: puts the server's `send` in `scope["direct_send"]`."""

    def __init__(self, inner: Any):
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope.get("type") == "websocket":
            scope = {**scope, "direct_send": send}
        return await self.inner(scope, receive, send)
