"""dashboard.threaded_http: each HTTP request runs whole on one thread of a fixed pool (the
middleware, the view, request_finished), while async views stay on the event loop."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db import connection

from dashboard.threaded_http import ThreadedASGIHandler

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio,
              pytest.mark.urls("tests.dashboard.threaded_http_urls"),
              # Django warns that it reads a sync streaming iterator whole (as it always has)
              pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")]


@pytest.fixture
def handler():
    handler = ThreadedASGIHandler(threads=1)
    yield handler
    handler.pool.shutdown()


async def get(handler: ThreadedASGIHandler, path: str) -> dict:
    """The response to GET `path`: status, headers and the whole body."""
    scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": path,
             "query_string": b"", "headers": [(b"host", b"localhost")]}
    communicator = ApplicationCommunicator(handler, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    response = await communicator.receive_output(timeout=5)
    response["body"] = b""
    while True:
        part = await communicator.receive_output(timeout=5)
        response["body"] += part.get("body", b"")
        if not part.get("more_body"):
            await communicator.wait(timeout=5)
            return response


async def test_a_sync_view_runs_on_a_pool_thread_which_gives_its_connection_back(handler):
    response = await get(handler, "/where")
    assert response["status"] == 200
    assert json.loads(response["body"])["thread"].startswith("http")
    # request_finished ran on that thread: its connection went back (closed or to the pool).
    assert handler.pool.submit(lambda: connection.connection).result() is None


async def test_an_async_view_runs_on_the_event_loop(handler):
    response = await get(handler, "/where-async")
    assert response["status"] == 200
    assert json.loads(response["body"])["loop"] == id(asyncio.get_running_loop())


async def test_a_streaming_response_is_read_on_the_thread_that_made_it(handler):
    response = await get(handler, "/streamed")
    assert response["status"] == 200
    made, read = response["body"].decode().split(", ")
    assert made.removeprefix("made on ") == read.removeprefix("read on ")
    assert read.removeprefix("read on ").startswith("http")


async def test_a_failing_view_is_a_500_and_the_thread_serves_the_next_request(handler):
    assert (await get(handler, "/failing"))["status"] == 500
    assert (await get(handler, "/where"))["status"] == 200


async def test_the_middleware_still_applies(handler):
    response = await get(handler, "/where")
    headers = {name.decode().lower(): value for name, value in response["headers"]}
    assert headers["x-frame-options"] == b"DENY"
    assert headers["x-content-type-options"] == b"nosniff"
