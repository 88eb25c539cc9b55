"""`manage.py serve` on the embedded default (in-memory channel layer): API calls and the clock
both run inside the server process, so a websocket on it sees every transition."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from websockets.sync import client as websockets_sync

from runs.tokens import ExecutorToken
from tests.api.live_servers import (
    delta_for,
    receive_until,
    server_env,
    session_cookie,
    start_server,
    stop_server,
)

pytestmark = [pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]


def test_api_calls_and_the_in_process_clock_reach_a_websocket_on_the_same_server():
    cookie = session_cookie()
    _, token = ExecutorToken.issue("exec-local")
    server, url = start_server(server_env(redis=False), "--clock-interval", "0.2")
    try:
        ws_url = url.replace("http://", "ws://") + "/ws/board/"
        with websockets_sync.connect(ws_url, additional_headers={"Cookie": cookie,
                                                                 "Origin": url},
                                     open_timeout=20) as socket, \
                httpx.Client(base_url=f"{url}/api/", timeout=10,
                             headers={"Authorization": f"Bearer {token}"}) as api:
            receive_until(socket, lambda frame: frame.get("type") == "snapshot")
            soon = (timezone.now() + timedelta(seconds=1)).isoformat()
            run_id = api.post("runs", json={"name": "later", "scheduled_at": soon}).json()["id"]
            receive_until(socket, delta_for(run_id, "scheduled"))
            # Nobody but the clock inside the server moves it on.
            frame = receive_until(socket, delta_for(run_id, "ready"))
            event = next(e for e in frame["deltas"] if e["id"] == run_id)
            assert event["actor"] == "clock"
    finally:
        stop_server(server)
    assert server.returncode == 0
