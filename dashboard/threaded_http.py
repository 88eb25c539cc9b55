"""Django's HTTP under ASGI with one thread hop per request.

Django's own ASGI handler runs the middleware chain async and gives every request a thread of
its own (asgiref's `ThreadSensitiveContext`): a new thread started and joined per request, a
new database wrapper in it, and a hop to it and back for the `request_started` signal, each
sync middleware (or the whole chain), the view and `response.close()`. Under the executors'
load (`benchmarks/api_executor_cycle.py`) that was a third of the server's CPU per run.

Here the event loop reads the body and sends the response; everything between runs sync on
one thread of a fixed pool, as under a threaded WSGI server: `request_started`, the same
middleware in the same order, the view, and `response.close()` (so `request_finished` closes
the thread's database connection — back to the pool — on the thread that used it). An async
view still runs on the event loop: Django wraps it in `async_to_sync`, which asgiref sends
back to the loop this thread was called from. A streaming response is sent from the thread
that made it, so its iterator may still use that thread's connection.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix


class ThreadedASGIHandler(ASGIHandler):
    """An ASGI handler for Django's HTTP requests: one hop to a pool of `threads` threads."""

    def __init__(self, *, threads: int) -> None:
        BaseHandler.__init__(self)  # not ASGIHandler's: that loads the chain async
        self.load_middleware(is_async=False)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="http")
        self._serve_on_pool = SyncToAsync(self._serve, thread_sensitive=False,
                                          executor=self.pool)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        response = await self._serve_on_pool(scope, body_file, send)
        if response is not None:
            await self.send_response(response, send)

    def _serve(self, scope: dict[str, Any], body_file: Any,
               send: Any) -> HttpResponseBase | None:
        """On a pool thread: the response, closed; or None once a streaming one was sent."""
        try:
            set_script_prefix(get_script_prefix(scope))
            signals.request_started.send(sender=self.__class__, scope=scope)
            request, response = self.create_request(scope, body_file)
            if request is not None:
                response = self.get_response(request)
                response._handler_class = self.__class__
                if isinstance(response, FileResponse):
                    response.block_size = self.chunk_size
            if response.streaming:
                try:
                    async_to_sync(self.send_response)(response, send)
                finally:
                    response.close()
                return None
            # The content is bytes already: end the request here, on its thread.
            response.close()
            return response
        finally:
            body_file.close()
