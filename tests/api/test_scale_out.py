"""Scale-out: two real daphne processes on PostgreSQL + Redis. A change made through process
A's HTTP API reaches a logged-in websocket client connected to process B."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync import client as websockets_sync

from runs.tokens import ExecutorToken

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(120),
              pytest.mark.django_db(transaction=True)]

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")
READY_LINE = "Runboard serving on"
START_TIMEOUT = 60


def _test_database_url() -> str:
    """The test database pytest-django created, as a URL the child processes can use."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _start_server(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen(
        [sys.executable, MANAGE, "serve", "--port", "0", "--no-clock"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    assert server.stdout is not None
    for line in server.stdout:  # ends when the child exits
        if line.startswith(READY_LINE):
            return server, line.split()[-1].rstrip("/")
        seen.append(line)
        if time.monotonic() > deadline:
            break
    server.kill()
    raise AssertionError("server did not start:\n" + "".join(seen[-30:]))


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    if server.stdout:
        server.stdout.close()


@pytest.fixture
def two_servers() -> Iterator[tuple[str, str]]:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=_test_database_url(),
        REDIS_URL=os.environ["REDIS_URL"],
        CHANNEL_LAYER_PREFIX=settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        SECRET_KEY=settings.SECRET_KEY,  # the session's auth hash is signed with it
        DEBUG="0",
        PYTHONUNBUFFERED="1",
    )
    servers: list[subprocess.Popen] = []
    try:
        a, url_a = _start_server(env)
        servers.append(a)
        b, url_b = _start_server(env)
        servers.append(b)
        yield url_a, url_b
    finally:
        for server in servers:
            _stop(server)


def _receive_until(socket: Any, wanted: Any, timeout: float = 20.0) -> dict[str, Any]:
    """Frames until one satisfies `wanted` (poll with a deadline, never a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the expected websocket frame never came"
        frame = json.loads(socket.recv(timeout=remaining))
        if wanted(frame):
            return frame


def _delta_for(run_id: str, state: str) -> Any:
    def matches(frame: dict[str, Any]) -> bool:
        return frame.get("type") == "deltas" and any(
            event["id"] == run_id and event["to"] == state for event in frame["deltas"])
    return matches


def test_a_change_through_server_a_reaches_a_websocket_on_server_b(two_servers):
    url_a, url_b = two_servers
    operator = User.objects.create_user("olga", password="pw-olga-123")
    browser = Client()
    browser.force_login(operator)
    session = browser.cookies[settings.SESSION_COOKIE_NAME].value
    _, token = ExecutorToken.issue("exec-remote")

    for url in (url_a, url_b):
        health = httpx.get(f"{url}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["checks"] == {"database": "ok", "channel_layer": "ok"}

    ws_url = url_b.replace("http://", "ws://") + "/ws/board/"
    with websockets_sync.connect(
        ws_url, additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}",
                                    "Origin": url_b},
        open_timeout=20,
    ) as socket:
        _receive_until(socket, lambda frame: frame.get("type") == "snapshot")
        api = httpx.Client(base_url=f"{url_a}/api/", timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
        submitted = api.post("runs", json={"name": "cross-process", "queue": "scale"})
        assert submitted.status_code == 201, submitted.text
        run_id = submitted.json()["id"]
        frame = _receive_until(socket, _delta_for(run_id, "ready"))
        assert frame["counts"]["ready"] >= 1

        (leased,) = api.post("lease", json={"queues": ["scale"]}).json()["runs"]
        assert leased["id"] == run_id
        assert api.post(f"runs/{run_id}/start").status_code == 200
        frame = _receive_until(socket, _delta_for(run_id, "running"))
        event = next(e for e in frame["deltas"] if e["id"] == run_id)
        assert event["run"]["lease_owner"] == "exec-remote"
        api.close()


def test_a_websocket_without_a_session_is_refused_by_server_b(two_servers):
    _, url_b = two_servers
    ws_url = url_b.replace("http://", "ws://") + "/ws/board/"
    with (websockets_sync.connect(ws_url, additional_headers={"Origin": url_b},
                                  open_timeout=20) as socket,
          pytest.raises(ConnectionClosed) as closed):
        socket.recv(timeout=10)
    assert closed.value.rcvd.code == 4401
