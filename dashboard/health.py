"""`GET /healthz`: is this server process able to do its job?

Checks the database (a query). Reports, without failing on them, what only affects latency:
how far this process's hub is behind the newest change-log row (`log_lag_seconds`; null while
no board is open here and the hub is idle) and, when `REDIS_URL` is set, whether the hub
hears Redis hints (without them boards still update, within the poll interval). 200 with
`{"status": "ok"}` when the database answers, else 503. No login: load balancers call it; it
reveals nothing but up or down and a lag.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from .hub import get_hub

logger = logging.getLogger(__name__)


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


@require_GET
async def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers, 503 otherwise; the hub's log lag either way."""
    checks: dict[str, str] = {}
    body: dict[str, Any] = {"checks": checks}
    try:
        await sync_to_async(_check_database)()
        checks["database"] = "ok"
    except Exception as error:  # any failure means unhealthy, whatever raised it
        logger.warning("healthz: database check failed: %r", error)
        checks["database"] = f"failed: {type(error).__name__}"
    hub = get_hub()
    body["hub"] = "reading" if hub.active else "idle"
    body["log_lag_seconds"] = None
    if hub.active and checks["database"] == "ok":
        body["log_lag_seconds"] = round(await hub.lag_seconds(), 3)
    if hub.redis_connected is not None:
        checks["redis_hints"] = "ok" if hub.redis_connected else "unreachable: polling"
    healthy = checks["database"] == "ok"
    body["status"] = "ok" if healthy else "unavailable"
    return JsonResponse(body, status=200 if healthy else 503)
