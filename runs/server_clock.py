"""The clock as a background task of a server process.

On the embedded default the channel layer is in-memory and reaches only the watchers of the
process that made a change, so the clock must tick inside the server process (DESIGN.md §5).
`run_clock` is an asyncio task on the server's event loop; each tick runs in Django's
thread-sensitive sync thread, exactly like a request, so its announcements take the same path
as an API call's. With Redis the clock may run as separate `manage.py clock` processes instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from . import services

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 1.0


def _tick() -> Mapping[str, int]:
    close_old_connections()
    try:
        return services.tick()
    finally:
        close_old_connections()


async def run_clock(*, interval: float = DEFAULT_INTERVAL_SECONDS,
                    stop: asyncio.Event | None = None) -> None:
    """Tick every `interval` seconds until `stop` is set (or the task is cancelled); tick again
    at once when a step moved a full batch, so a backlog drains without waiting."""
    stop = stop or asyncio.Event()
    tick = sync_to_async(_tick, thread_sensitive=True)
    while not stop.is_set():
        try:
            moved = await tick()
        except Exception:  # a failed tick (database away) must not end the clock
            logger.exception("clock tick failed")
            moved = {}
        if any(count >= services.TICK_BATCH for count in moved.values()):
            continue
        if any(moved.values()):
            logger.debug("clock moved %s", dict(moved))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
