"""Forward each committed `run_changed` event to the channel layer, once.

One `group_send` per event, whoever committed it: every server process's hub is the one member
of the group, and fans the event out to its own sockets (see `dashboard.hub`). The receiver
runs inside whatever thread committed the transition:

- a sync thread (a view run by `sync_to_async`, the clock, a management command, a test): the
  send is handed to an event loop with `run_coroutine_threadsafe` — the loop of this process's
  running hub when there is one (the in-memory layer's queues belong to it), otherwise one
  long-lived background loop, so a process never builds a loop and a Redis pool per event as
  `async_to_sync` would (with the in-memory layer and no hub nobody could hear it: nothing is
  sent). The writer does not wait for the send: its transaction has committed, and a writer
  must never queue behind a Redis round trip or a busy hub's fan-out (waiting cost 10-25 % of
  write throughput in benchmarks/transitions.py). Sends may therefore reach the layer out of
  order; the hub keeps the newest version per run and counts by from → to, so order does not
  matter. At most `MAX_IN_FLIGHT` sends wait at once; past that an event is dropped and
  logged, and boards heal on their next recount or resync;
- code already on an event loop (sync ORM under DJANGO_ALLOW_ASYNC_UNSAFE): it must not block
  that loop, so the send becomes a task on it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

from .hub import running_hub_loop
from .subscription import HUB_GROUP, RUN_CHANGED

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT = 10_000

_background_loop: asyncio.AbstractEventLoop | None = None
_background_lock = threading.Lock()
_pending_tasks: set[asyncio.Task] = set()
_in_flight = 0
_in_flight_lock = threading.Lock()


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
    loop = running_hub_loop()
    if loop is None:
        if isinstance(get_channel_layer(), InMemoryChannelLayer):
            return  # the in-memory layer reaches only this process, where no hub listens
        loop = _sender_loop()
    global _in_flight
    with _in_flight_lock:
        if _in_flight >= MAX_IN_FLIGHT:
            logger.error("run_changed broadcast of run %s v%s dropped: %d sends already wait; "
                         "boards heal on resync", event.get("id"), event.get("version"),
                         _in_flight)
            return
        _in_flight += 1
    future = asyncio.run_coroutine_threadsafe(_group_send(event), loop)
    future.add_done_callback(_sent)


def _sent(future: Future) -> None:
    global _in_flight
    with _in_flight_lock:
        _in_flight -= 1
    if not future.cancelled() and future.exception() is not None:
        logger.error("run_changed broadcast failed", exc_info=future.exception())


def on_run_changed(sender: Any, event: dict[str, Any], **kwargs: Any) -> None:
    """`run_changed` receiver (connected in `DashboardConfig.ready`)."""
    forward(event)
