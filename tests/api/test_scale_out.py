"""Scale-out: two real daphne processes on PostgreSQL + Redis hints. A change made through
process A's HTTP API reaches a logged-in websocket client connected to process B."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
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

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120),
              pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_servers() -> Iterator[tuple[str, str]]:
    env = server_env(redis=True)
    servers = []
    try:
        for _ in range(2):
            server, url = start_server(env)
            servers.append((server, url))
        yield servers[0][1], servers[1][1]
    finally:
        for server, _ in servers:
            stop_server(server)


def test_a_change_through_server_a_reaches_a_websocket_on_server_b(two_servers):
    url_a, url_b = two_servers
    cookie = session_cookie()
    _, token = ExecutorToken.issue("exec-remote")
    for url in (url_a, url_b):
        health = httpx.get(f"{url}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["checks"]["database"] == "ok"

    ws_url = url_b.replace("http://", "ws://") + "/ws/board/"
    with websockets_sync.connect(ws_url, additional_headers={"Cookie": cookie, "Origin": url_b},
                                 open_timeout=20) as socket, \
            httpx.Client(base_url=f"{url_a}/api/", timeout=10,
                         headers={"Authorization": f"Bearer {token}"}) as api:
        receive_until(socket, lambda frame: frame.get("type") == "snapshot")
        submitted = api.post("runs", json={"name": "cross-process", "queue": "scale"})
        assert submitted.status_code == 201, submitted.text
        run_id = submitted.json()["id"]
        frame = receive_until(socket, delta_for(run_id, "ready"))
        assert frame["counts"]["ready"] >= 1

        (leased,) = api.post("lease", json={"queues": ["scale"]}).json()["runs"]
        assert leased["id"] == run_id
        assert api.post(f"runs/{run_id}/start").status_code == 200
        frame = receive_until(socket, delta_for(run_id, "running"))
        event = next(e for e in frame["deltas"] if e["id"] == run_id)
        assert event["run"]["lease_owner"] == "exec-remote"


def test_a_websocket_without_a_session_is_refused_by_server_b(two_servers):
    _, url_b = two_servers
    ws_url = url_b.replace("http://", "ws://") + "/ws/board/"
    with (websockets_sync.connect(ws_url, additional_headers={"Origin": url_b},
                                  open_timeout=20) as socket,
          pytest.raises(ConnectionClosed) as closed):
        socket.recv(timeout=10)
    assert closed.value.rcvd.code == 4401
