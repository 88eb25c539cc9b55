"""schemathesis, as a new user would run it, against a real `serve` process with a token:
every check, stateful links on, a fixed seed and bounded examples. No failure is allowed, and
the stateful walk must reach the executor verbs through the links of the document."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runs.models import Transition
from runs.tokens import ExecutorToken
from tests.api.live_servers import server_env, start_server, stop_server

pytestmark = [pytest.mark.timeout(300), pytest.mark.django_db(transaction=True)]

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CONFIG = str(Path(__file__).with_name("schemathesis.toml"))
SEED = 20261201
EXAMPLES = 25


def test_schemathesis_finds_nothing_and_walks_from_lease_to_every_executor_verb(tmp_path):
    _, token = ExecutorToken.issue("st-walker")
    server, url = start_server(server_env(redis=False))
    try:
        walk = subprocess.run(
            [SCHEMATHESIS, "--config-file", CONFIG, "run", f"{url}/api/openapi.json",
             "--checks", "all",
             "--phases", "coverage,fuzzing,stateful", "--seed", str(SEED),
             "--max-examples", str(EXAMPLES), "--generation-database", "none",
             "--workers", "1", "--no-color", "--request-timeout", "20",
             "-H", f"Authorization: Bearer {token}"],
            capture_output=True, text=True, timeout=240, cwd=tmp_path,
        )
    finally:
        stop_server(server)
    report = walk.stdout + walk.stderr
    assert walk.returncode == 0, report[-6000:]
    assert "Stateful" in report and "failures" not in report.split("SUMMARY")[-1], report[-3000:]
    # The walk really reached the executor verbs: a leased run started, and one that ran ended.
    moved = set(Transition.objects.filter(actor="st-walker").values_list("to_state", flat=True))
    assert {"leased", "running"} <= moved, moved
    assert moved & {"completed", "failed", "retry_wait", "suspended"}, moved
