"""The process's one membership in the board group, and the loop that reads it.

With Redis, each message costs the reader a few round trips (channels-redis pops one message
per BZPOPMIN and then cleans its backup queue). On the server's own event loop those round
trips queue behind every flush round, which under load throttles how many events a process
can take in. So with any layer but the in-memory one (whose queues belong to the loop that
sends to them) the reader runs on its own thread and event loop, with its own layer instance,
and hands each event to the hub's loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

from channels.layers import DEFAULT_CHANNEL_LAYER, InMemoryChannelLayer, channel_layers

logger = logging.getLogger(__name__)

HUB_GROUP = "runboard.hub"
RUN_CHANGED = "run.changed"
GROUP_REFRESH_INTERVAL = 3600.0  # channel layers expire group membership (Redis: 24 h)
STOP_TIMEOUT = 5.0


class Subscription:
    """Join `HUB_GROUP` once and call `on_event(event)` on `hub_loop` for every message;
    `on_gap()` when messages may have been lost (the reader failed and rejoined)."""

    def __init__(self, hub_loop: asyncio.AbstractEventLoop, layer: Any,
                 on_event: Callable[[dict[str, Any]], None], on_gap: Callable[[], None]):
        self.hub_loop = hub_loop
        self.threaded = not isinstance(layer, InMemoryChannelLayer)
        self.layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER) if self.threaded \
            else layer
        self.on_event, self.on_gap = on_event, on_gap
        self.channel: str | None = None
        self._loop = hub_loop
        self._thread: threading.Thread | None = None
        self._running: list[asyncio.Future | concurrent.futures.Future] = []

    async def start(self) -> str:
        if self.threaded:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._run_reader_loop,
                                            name="runboard-hub-reader", daemon=True)
            self._thread.start()
        self.channel = await self._on_reader_loop(self._join())
        for coroutine in (self._read(), self._refresh_membership()):
            if self.threaded:
                self._running.append(asyncio.run_coroutine_threadsafe(coroutine, self._loop))
            else:
                self._running.append(self._loop.create_task(coroutine))
        return self.channel

    async def stop(self) -> None:
        for running in self._running:
            running.cancel()
        self._running = []
        try:
            await asyncio.wait_for(self._on_reader_loop(self._leave()), STOP_TIMEOUT)
        except Exception:  # the membership expires anyway
            logger.warning("hub could not leave %s", HUB_GROUP, exc_info=True)
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, STOP_TIMEOUT)
            self._thread = None

    def _run_reader_loop(self) -> None:
        self._loop.run_forever()
        self._loop.close()  # here, in its own thread: channels-redis cleans up on close

    async def _on_reader_loop(self, coroutine: Any) -> Any:
        if not self.threaded:
            return await coroutine
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._loop))

    def _emit(self, callback: Callable[..., None], *args: Any) -> None:
        if self.threaded:
            self.hub_loop.call_soon_threadsafe(callback, *args)
        else:
            callback(*args)

    async def _join(self) -> str:
        channel = await self.layer.new_channel()
        await self.layer.group_add(HUB_GROUP, channel)
        return channel

    async def _leave(self) -> None:
        await self.layer.group_discard(HUB_GROUP, self.channel)
        if self.threaded and hasattr(self.layer, "close_pools"):
            await self.layer.close_pools()  # its connections belong to the loop about to close

    async def _read(self) -> None:
        backoff = 0.5
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis went away or timed out: messages may be lost, so every watcher takes
                # a fresh snapshot once the subscription is back.
                logger.warning("hub receive failed; rejoining in %.1fs", backoff, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                try:
                    await self.layer.group_add(HUB_GROUP, self.channel)
                except Exception:
                    logger.warning("hub could not rejoin %s", HUB_GROUP, exc_info=True)
                    continue
                self._emit(self.on_gap)
                continue
            backoff = 0.5
            events = message.get("events") if message.get("type") == RUN_CHANGED else None
            if isinstance(events, list):  # one message carries every event a sender had queued
                for event in events:
                    if isinstance(event, dict):
                        self._emit(self.on_event, event)

    async def _refresh_membership(self) -> None:
        while True:
            await asyncio.sleep(GROUP_REFRESH_INTERVAL)
            try:
                await self.layer.group_add(HUB_GROUP, self.channel)
            except Exception:
                logger.warning("hub could not refresh its group membership", exc_info=True)
