"""`GET /healthz`: is this server process able to do its job?

Checks the database (a query) and the channel layer (a message sent to and received from a
private channel of this process). 200 with `{"status": "ok"}` when both answer, else 503 naming
what failed. No login: load balancers call it; it reveals nothing but up or down.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)

CHANNEL_TIMEOUT_SECONDS = 2.0


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    channel = await layer.new_channel("healthz.")
    await layer.send(channel, {"type": "healthz.ping"})
    message = await asyncio.wait_for(layer.receive(channel), CHANNEL_TIMEOUT_SECONDS)
    if message.get("type") != "healthz.ping":
        raise RuntimeError(f"unexpected message {message!r}")


@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the channel layer both answer, 503 otherwise."""
    checks: dict[str, str] = {}
    for name, check in (("database", sync_to_async(_check_database)),
                        ("channel_layer", _check_channel_layer)):
        try:
            await check()
            checks[name] = "ok"
        except Exception as error:  # any failure means unhealthy, whatever raised it
            logger.warning("healthz: %s check failed: %r", name, error)
            checks[name] = f"failed: {type(error).__name__}"
    healthy = all(result == "ok" for result in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", "checks": checks},
                        status=200 if healthy else 503)
