"""Forward each committed `run_changed` event to the channel layer, once.

At most one `group_send` per event, whoever committed it (under load one message carries every
event that queued meanwhile): every server process's hub is the one member of the group, and
fans the events out to its own sockets (see `dashboard.hub`). The receiver runs inside
whatever thread committed the transition:

- a sync thread (a view run by `sync_to_async`, the clock, a management command, a test): the
  event is handed to an event loop's outbox with `call_soon_threadsafe` — the loop of this process's
  running hub when there is one (the in-memory layer's queues belong to it), otherwise one
  long-lived background loop, so a process never builds a loop and a Redis pool per event as
  `async_to_sync` would (with the in-memory layer and no hub nobody could hear it: nothing is
  sent). The writer does not wait for the send: its transaction has committed, and a writer
  must never queue behind a Redis round trip or a busy hub's fan-out (waiting cost 10-25 % of
  write throughput in benchmarks/transitions.py). Sends may therefore reach the layer out of
  order; the hub keeps the newest version per run and counts by from → to, so order does not
  matter. Each loop has one bounded `Outbox` drained by a few sender tasks: past
  `MAX_PENDING` waiting events one is dropped and logged, and boards heal on their next
  recount or resync;
- code already on an event loop (sync ORM under DJANGO_ALLOW_ASYNC_UNSAFE): it must not block
  that loop, so the send becomes a task on it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

from .hub import running_hub_loop
from .subscription import HUB_GROUP, RUN_CHANGED

logger = logging.getLogger(__name__)

MAX_PENDING = 10_000  # events waiting in one loop's outbox before new ones are dropped
SENDERS = 4  # concurrent group_sends per loop: enough to overlap Redis round trips, few
             # enough never to exhaust the connection pool
BATCH = 200  # events per channel-layer message at most (each message costs several Redis
             # round trips; under load one carries everything that queued meanwhile)

_background_loop: asyncio.AbstractEventLoop | None = None
_background_lock = threading.Lock()
_outboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Outbox] = (
    weakref.WeakKeyDictionary())


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


class Outbox:
    """One event loop's queue of events to send, drained by `SENDERS` tasks on that loop.

    Writers only append (from any thread, through `call_soon_threadsafe`), so a commit never
    waits for Redis or for a busy hub; the bounded queue and the fixed number of senders keep
    a burst from opening a connection per event.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue[dict[str, Any]] | None = None
        self.tasks: set[asyncio.Task] = set()

    def put(self, event: dict[str, Any]) -> None:
        """Queue `event`; must run on `self.loop`."""
        if self.queue is None:
            self.queue = asyncio.Queue(maxsize=MAX_PENDING)
        if not self.tasks:
            self.tasks = {self.loop.create_task(self._drain()) for _ in range(SENDERS)}
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            logger.error("run_changed broadcast of run %s v%s dropped: %d events already "
                         "wait; boards heal on their next recount or resync",
                         event.get("id"), event.get("version"), MAX_PENDING)

    async def _drain(self) -> None:
        assert self.queue is not None
        while True:
            events = [await self.queue.get()]
            while len(events) < BATCH and not self.queue.empty():
                events.append(self.queue.get_nowait())
            try:
                await _group_send(events)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("run_changed broadcast of %d event(s) failed (first: run %s "
                                 "v%s)", len(events), events[0].get("id"),
                                 events[0].get("version"))


def _outbox(loop: asyncio.AbstractEventLoop) -> Outbox:
    with _background_lock:  # writers on several threads may ask for the same loop's at once
        outbox = _outboxes.get(loop)
        if outbox is None:
            outbox = _outboxes[loop] = Outbox(loop)
        return outbox


async def _group_send(events: list[dict[str, Any]]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(HUB_GROUP, {"type": RUN_CHANGED, "events": events})


def forward(event: dict[str, Any]) -> None:
    """Queue one committed event for the board group (a channel-layer message per process)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        _outbox(running).put(event)
        return
    loop = running_hub_loop()
    if loop is None:
        if isinstance(get_channel_layer(), InMemoryChannelLayer):
            return  # the in-memory layer reaches only this process, where no hub listens
        loop = _sender_loop()
    loop.call_soon_threadsafe(_outbox(loop).put, event)


def on_run_changed(sender: Any, event: dict[str, Any], **kwargs: Any) -> None:
    """`run_changed` receiver (connected in `DashboardConfig.ready`)."""
    forward(event)
