"""Hand websocket consumers the server's own `send`, for the hub's fan-out.

Channels' session middleware wraps every `send` to check whether the session needs saving
(measured: about a third of the per-delivery cost of a hub frame). A websocket frame never
changes the session, so the hub writes deltas through the unwrapped `send`; the handshake and
everything a consumer sends itself still go through the full middleware stack.
"""

from __future__ import annotations

from functools import partial
from typing import Any


class DirectSendMiddleware:
    """Outermost websocket middleware: puts the server's `send` in `scope["direct_send"]`."""

    def __init__(self, inner: Any):
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope.get("type") == "websocket":
            scope = {**scope, "direct_send": send}
        return await self.inner(scope, receive, send)


def unsent_bytes(send: Any) -> int:
    """Bytes the server has accepted for this socket but not yet written to the network.

    Daphne's `send` is `partial(server.handle_reply, protocol)` and its Twisted transport keeps
    what the kernel would not take yet; a tab that reads slowly shows up here. Any other server
    (or a test stack) reports 0: every frame is taken as delivered.
    """
    protocol = send.args[0] if isinstance(send, partial) and send.args else None
    transport = getattr(protocol, "transport", None)
    if transport is None:
        return 0
    buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return max(0, buffered) + getattr(transport, "_tempDataLen", 0)
