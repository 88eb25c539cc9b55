"""The run page updates live: its socket (the board's, `?run=<id>`) announces each committed
change of this run, and the page's refresh endpoint then returns the new answer and moves —
the same two steps `dashboard/static/dashboard/run.js` takes."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import reverse

from runs import services
from runs.states import RunState
from tests.runpage.html import parse

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]
TIMEOUT = 5


def page_config(client: Client, run_id) -> dict:
    html = parse(client.get(reverse("run-detail", args=[run_id])).content)
    return json.loads(html.find("script", id="run-config").text)


async def open_socket(client: Client, path: str) -> WebsocketCommunicator:
    from dashboard.asgi import application

    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost"),
               (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]
    socket = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await socket.connect(timeout=TIMEOUT)
    assert connected
    return socket


async def next_frame(socket: WebsocketCommunicator, kind: str) -> dict:
    frame = await socket.receive_json_from(timeout=TIMEOUT)
    assert frame["type"] == kind, frame
    return frame


async def test_the_run_page_follows_its_run_over_the_websocket(operator_client, make_run):
    run = await sync_to_async(make_run)(RunState.RUNNING, name="etl")
    other = await sync_to_async(make_run)(RunState.RUNNING, name="bystander")
    config = await sync_to_async(page_config)(operator_client, run.pk)
    assert config["socketPath"] == f"/ws/board/?run={run.pk}"
    socket = await open_socket(operator_client, config["socketPath"])
    snapshot = await next_frame(socket, "snapshot")
    assert snapshot["run"]["id"] == str(run.pk)

    await sync_to_async(services.cancel)(other.pk, actor="bob")  # not this page's run
    await sync_to_async(services.suspend)(run.pk, actor="olga", reason="db maintenance")
    frame = await next_frame(socket, "deltas")
    assert [(e["id"], e["to"]) for e in frame["deltas"]] == [(str(run.pk), "suspended")]
    assert frame["deltas"][0]["version"] > config["version"]

    live = await sync_to_async(operator_client.get)(
        config["liveUrl"], {"after": config["lastTransitionId"]})
    data = live.json()
    assert data["answer"] == {"code": "suspended", "text": "Suspended by olga: db maintenance"}
    assert [(m["from"], m["to"], m["actor"]) for m in data["timeline"]] == [
        ("running", "suspended", "olga")]
    assert data["actions"] == ["cancel", "resume"]
    await socket.disconnect()


async def test_a_watcher_of_the_run_page_needs_a_login(make_run):
    from dashboard.asgi import application

    run = await sync_to_async(make_run)()
    socket = WebsocketCommunicator(application, f"/ws/board/?run={run.pk}",
                                   headers=[(b"origin", b"http://localhost"),
                                            (b"host", b"localhost")])
    await socket.connect(timeout=TIMEOUT)
    closed = await socket.receive_output(timeout=TIMEOUT)
    assert closed["type"] == "websocket.close" and closed["code"] == 4401
