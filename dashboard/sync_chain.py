"""Keep Django's HTTP middleware chain on one thread per request under ASGI.

Django adapts each middleware to the mode of the handler inside it. The chain starts async
under ASGI, so every `MiddlewareMixin` middleware (all of Django's) ran async and hopped to
the request's thread and back for its `process_request` and again for `process_response`,
while WhiteNoise (sync only) bridged the whole inner chain back from a thread: some thirty
thread switches per request, most of the server's CPU per API call (py-spy,
benchmarks/api_executor_cycle.py). A sync-only middleware innermost makes every middleware
outside it sync: the request enters its thread once and runs the whole chain there; only the
view dispatch crosses back to the event loop.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase


class SyncMiddlewareChain:
    """A sync-only middleware that does nothing but keep the chain around it sync."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)
