"""Views that report where they ran, for tests/dashboard/test_threaded_http.py."""

from __future__ import annotations

import asyncio
import threading

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path


def where(request: HttpRequest) -> JsonResponse:
    connection.ensure_connection()
    return JsonResponse({"thread": threading.current_thread().name})


async def where_async(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"loop": id(asyncio.get_running_loop()),
                         "thread": threading.current_thread().name})


def streamed(request: HttpRequest) -> StreamingHttpResponse:
    made_on = threading.current_thread().name

    def parts():
        yield f"made on {made_on}, ".encode()
        yield f"read on {threading.current_thread().name}".encode()

    return StreamingHttpResponse(parts())


def failing(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a view")


urlpatterns = [
    path("where", where),
    path("where-async", where_async),
    path("streamed", streamed),
    path("failing", failing),
]
