"""Changes from any process reach the board of a `manage.py serve` process: an API call into
the server, a `manage.py clock --once` run as its own process (as from cron), and a script
that commits and exits at once — on the embedded default (SQLite, no Redis) too, because the
server's hub reads the database's change log."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from websockets.sync import client as websockets_sync

from runs.tokens import ExecutorToken
from tests.api.live_servers import (
    MANAGE,
    delta_for,
    receive_until,
    server_env,
    session_cookie,
    start_server,
    stop_server,
)

pytestmark = [pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]

SUBMIT_AND_EXIT = (
    "import django; django.setup(); from runs import services; "
    "print(services.submit(name='from-a-script', actor='script').pk)"
)


def test_changes_from_the_server_a_separate_clock_and_an_exiting_script_reach_its_board():
    cookie = session_cookie()
    _, token = ExecutorToken.issue("exec-local")
    env = server_env(redis=False)
    server, url = start_server(env)
    try:
        ws_url = url.replace("http://", "ws://") + "/ws/board/"
        with websockets_sync.connect(ws_url, additional_headers={"Cookie": cookie,
                                                                 "Origin": url},
                                     open_timeout=20) as socket, \
                httpx.Client(base_url=f"{url}/api/", timeout=10,
                             headers={"Authorization": f"Bearer {token}"}) as api:
            receive_until(socket, lambda frame: frame.get("type") == "snapshot")
            due = timezone.now() + timedelta(milliseconds=300)
            run_id = api.post("runs", json={"name": "later",
                                            "scheduled_at": due.isoformat()}).json()["id"]
            receive_until(socket, delta_for(run_id, "scheduled"))

            # The clock, as cron would run it, once the run is due (a moment of wall time).
            time.sleep(max(0.0, (due - timezone.now()).total_seconds()))
            clock = subprocess.run([sys.executable, MANAGE, "clock", "--once"], env=env,
                                   capture_output=True, text=True, timeout=60)
            assert clock.returncode == 0, clock.stderr
            frame = receive_until(socket, delta_for(run_id, "ready"))
            assert next(e for e in frame["deltas"] if e["id"] == run_id)["actor"] == "clock"

            script = subprocess.run([sys.executable, "-c", SUBMIT_AND_EXIT],
                                    env={**env, "DJANGO_SETTINGS_MODULE": "dashboard.settings"},
                                    capture_output=True, text=True, timeout=60,
                                    cwd=str(MANAGE).rsplit("/", 1)[0])
            assert script.returncode == 0, script.stderr
            submitted = script.stdout.strip().splitlines()[-1]
            frame = receive_until(socket, delta_for(submitted, "ready"))
            event = next(e for e in frame["deltas"] if e["id"] == submitted)
            assert (event["kind"], event["actor"]) == ("created", "script")
    finally:
        stop_server(server)
    assert server.returncode == 0
