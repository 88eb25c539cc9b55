"""Real server processes for tests: `manage.py serve` children on free loopback ports, sharing
the test database (committed data: use `django_db(transaction=True)`)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")
READY_LINE = "Runboard serving on"
START_TIMEOUT = 60


def test_database_url() -> str:
    """The database pytest-django created for this test, as a URL for child processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def server_env(*, redis: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in {"DJANGO_SETTINGS_MODULE", "REDIS_URL"}}
    env.update(DATABASE_URL=test_database_url(), SECRET_KEY=settings.SECRET_KEY, DEBUG="0",
               PYTHONUNBUFFERED="1")
    if redis:
        env.update(REDIS_URL=os.environ["REDIS_URL"],
                   HINT_CHANNEL=settings.RUNBOARD["HINT_CHANNEL"])
    return env


def start_server(env: dict[str, str], *extra: str) -> tuple[subprocess.Popen, str]:
    """Start `manage.py serve --port 0`; return it and its base URL once it listens."""
    server = subprocess.Popen([sys.executable, MANAGE, "serve", "--port", "0", *extra],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    assert server.stdout is not None
    for line in server.stdout:  # ends when the child exits
        if line.startswith(READY_LINE):
            drain(server)
            return server, line.split()[-1].rstrip("/")
        seen.append(line)
        if time.monotonic() > deadline:
            break
    server.kill()
    server.wait()
    raise AssertionError("server did not start:\n" + "".join(seen[-30:]))


def drain(server: subprocess.Popen, keep: int = 200) -> None:
    """Keep reading the child's log so that it never blocks on a full pipe (a busy server logs
    a line per refused request); the last `keep` lines stay on `server.log_tail`."""
    tail: deque[str] = deque(maxlen=keep)
    server.log_tail = tail  # type: ignore[attr-defined]

    def read() -> None:
        with contextlib.suppress(ValueError):  # the pipe was closed by stop_server
            for line in server.stdout:  # type: ignore[union-attr]
                tail.append(line)

    threading.Thread(target=read, name=f"drain-{server.pid}", daemon=True).start()


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM (daphne shuts down cleanly), then wait; kill only if it does not stop."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    if server.stdout:
        server.stdout.close()


def session_cookie(username: str = "olga") -> str:
    """A logged-in session stored in the test database, as the cookie header's value."""
    user = User.objects.create_user(username, password=f"pw-{username}-123")
    browser = Client()
    browser.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"


def receive_until(socket: Any, wanted: Callable[[dict[str, Any]], bool],
                  timeout: float = 20.0) -> dict[str, Any]:
    """Websocket frames until one satisfies `wanted` (poll with a deadline, never a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the expected websocket frame never came"
        frame = json.loads(socket.recv(timeout=remaining))
        if wanted(frame):
            return frame


def delta_for(run_id: str, state: str) -> Callable[[dict[str, Any]], bool]:
    """Matches a deltas frame carrying `run_id`'s move to `state`."""
    def matches(frame: dict[str, Any]) -> bool:
        return frame.get("type") == "deltas" and any(
            event["id"] == run_id and event["to"] == state for event in frame["deltas"])
    return matches
