"""Forward each committed `run_changed` event to the channel layer, once.

One `group_send` per event, whoever committed it: every server process's hub is the one member
of the group, and fans the event out to its own sockets (see `dashboard.hub`). The receiver
runs inside whatever thread committed the transition:

- a sync thread (a view run by `sync_to_async`, the clock, a management command, a test): the
  send is handed to an event loop with `run_coroutine_threadsafe` and awaited with a timeout —
  the loop of this process's running hub when there is one (the in-memory layer's queues
  belong to it), otherwise one long-lived background loop, so a process never builds a loop
  and a Redis pool per event as `async_to_sync` would;
- code already on an event loop (sync ORM under DJANGO_ALLOW_ASYNC_UNSAFE): it must not block
  that loop, so the send becomes a task on it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from channels.layers import get_channel_layer

from .hub import HUB_GROUP, RUN_CHANGED, running_hub_loop

logger = logging.getLogger(__name__)

SEND_TIMEOUT_SECONDS = 5.0

_background_loop: asyncio.AbstractEventLoop | None = None
_background_lock = threading.Lock()
_pending_tasks: set[asyncio.Task] = set()


def _sender_loop() -> asyncio.AbstractEventLoop:
    """A daemon thread's event loop for processes without a running hub (clock, commands)."""
    global _background_loop
    with _background_lock:
        if _background_loop is None or _background_loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="runboard-broadcast",
                             daemon=True).start()
            _background_loop = loop
        return _background_loop


async def _group_send(event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(HUB_GROUP, {"type": RUN_CHANGED, "event": event})


def _log_failure(task: asyncio.Task) -> None:
    _pending_tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("run_changed broadcast failed", exc_info=task.exception())


def forward(event: dict[str, Any]) -> None:
    """Send one committed event to the board group (one channel-layer message per process)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        task = running.create_task(_group_send(event))
        _pending_tasks.add(task)  # keep a reference until done
        task.add_done_callback(_log_failure)
        return
    loop = running_hub_loop() or _sender_loop()
    future = asyncio.run_coroutine_threadsafe(_group_send(event), loop)
    try:
        future.result(timeout=SEND_TIMEOUT_SECONDS)
    except FutureTimeout:
        future.cancel()
        logger.error("run_changed broadcast of run %s v%s timed out; boards heal on resync",
                     event.get("id"), event.get("version"))


def on_run_changed(sender: Any, event: dict[str, Any], **kwargs: Any) -> None:
    """`run_changed` receiver (connected in `DashboardConfig.ready`)."""
    forward(event)
