"""Run blocking database work off the event loop without serializing every socket on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

T = TypeVar("T")


def _with_fresh_connection(fn: Callable[..., T]) -> Callable[..., T]:
    def call(*args: Any, **kwargs: Any) -> T:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()
    return call


async def run_in_worker(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call `fn` in the thread pool (not the single thread-sensitive executor that
    `database_sync_to_async` uses, so a slow count never queues every socket's snapshot)."""
    return await sync_to_async(_with_fresh_connection(fn), thread_sensitive=False)(
        *args, **kwargs)
