"""Wake-up hints: "the change log has grown", sent after a commit so readers look sooner.

A hint carries nothing and promises nothing. Readers poll the log every `LOG_POLL_INTERVAL`
anyway, so a lost hint (Redis away, a writer killed right after its commit) costs at most one
poll interval, never a change. Two ways a hint travels:

- **in-process**: listeners registered with `listen_here` (this process's hub) are called at
  once, from the committing thread — they must only schedule work (`call_soon_threadsafe`);
- **Redis** (when `REDIS_URL` is set): one `PUBLISH` on `HINT_CHANNEL`, made by a daemon thread
  so the writer never waits for Redis; commits that arrive while a publish is in flight, or
  within `PUBLISH_GAP` after it, share the next one. A process that exits flushes a pending
  hint first (`atexit`). Readers in other processes subscribe with `listen_on_redis`.

Never `NOTIFY` inside a write transaction: PostgreSQL serializes every committing transaction
that notified on one global lock.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from runs.conf import runboard_setting

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 1.0  # seconds a publish may take before the hint is given up
# After a publish, commits within this many seconds share the next one: a busy writer process
# publishes at most 1/PUBLISH_GAP times a second however fast it commits (at 16 writers one
# PUBLISH per commit cost a third of the write throughput), and an idle one at once.
PUBLISH_GAP = 0.02
RECONNECT_BACKOFF_MAX = 5.0
ERROR_LOG_INTERVAL = 30.0  # Redis being away is logged once per this many seconds, not per hint

_listeners: list[Callable[[], None]] = []
_listeners_lock = threading.Lock()


def channel() -> str:
    return runboard_setting("HINT_CHANNEL", "runboard:changes")


def redis_url() -> str:
    return getattr(settings, "REDIS_URL", "") or ""


def listen_here(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` (thread-safe, non-blocking) after every commit made in this process.
    Returns a function that stops listening."""
    with _listeners_lock:
        _listeners.append(callback)

    def stop() -> None:
        with _listeners_lock:
            if callback in _listeners:
                _listeners.remove(callback)
    return stop


def after_commit() -> None:
    """Registered with `transaction.on_commit` by every write to a run."""
    with _listeners_lock:
        listeners = list(_listeners)
    for callback in listeners:
        try:
            callback()
        except Exception:  # a hint must never hurt a write that has committed
            logger.exception("in-process change-log hint failed")
    if redis_url():
        _publisher().request()


class _Publisher:
    """One daemon thread per process that turns pending hints into Redis PUBLISHes."""

    def __init__(self, url: str, channel_name: str):
        self.url, self.channel = url, channel_name
        self.pid = os.getpid()
        self.pending = threading.Event()
        self.client: Any = None
        self.last_error_logged = 0.0
        self.thread = threading.Thread(target=self._run, name="runboard-hints", daemon=True)
        self.thread.start()
        atexit.register(self.flush)

    def request(self) -> None:
        self.pending.set()

    def flush(self) -> None:
        """Publish a pending hint now (at exit: the daemon thread dies with the process)."""
        if self.pending.is_set():
            self.pending.clear()
            self._publish()

    def _run(self) -> None:
        while True:
            self.pending.wait()
            self.pending.clear()
            self._publish()
            time.sleep(PUBLISH_GAP)

    def _publish(self) -> None:
        import redis

        try:
            if self.client is None:
                self.client = redis.Redis.from_url(
                    self.url, socket_timeout=PUBLISH_TIMEOUT,
                    socket_connect_timeout=PUBLISH_TIMEOUT)
            self.client.publish(self.channel, b"1")
        except Exception as error:
            self.client = None  # reconnect on the next hint
            now = time.monotonic()
            if now - self.last_error_logged > ERROR_LOG_INTERVAL:
                self.last_error_logged = now
                logger.warning("change-log hint not published (%r); readers fall back to "
                               "polling", error)


_publisher_instance: _Publisher | None = None
_publisher_lock = threading.Lock()


def _publisher() -> _Publisher:
    global _publisher_instance
    with _publisher_lock:
        # A forked child inherits the object but not its thread: it needs its own.
        if _publisher_instance is None or _publisher_instance.pid != os.getpid():
            _publisher_instance = _Publisher(redis_url(), channel())
        return _publisher_instance


async def listen_on_redis(callback: Callable[[], None], *,
                          connected: Callable[[bool], None] | None = None) -> None:
    """Call `callback` for every hint published on Redis, until cancelled.

    Reconnects with backoff when Redis goes away; `connected(True/False)` reports the link for
    health checks. A reconnect also calls `callback` once: hints sent meanwhile were lost.
    """
    import redis.asyncio as aioredis

    backoff = 0.2
    while True:
        client = aioredis.Redis.from_url(redis_url(), socket_connect_timeout=2.0,
                                         socket_timeout=None)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(channel())
                if connected:
                    connected(True)
                callback()
                backoff = 0.2
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        callback()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.info("change-log hint subscription lost (%r); retrying in %.1fs",
                        error, backoff)
        finally:
            if connected:
                connected(False)
            await client.aclose()
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX)
