"""`manage.py demo` (what `make run` starts), run for real against its own SQLite file.

The demo runs as a subprocess with the embedded default (SQLite + in-memory channel layer); the
tests then read its database directly and check the audit trail.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import pytest
from django.conf import settings

from runs.states import RunState, can_move

pytestmark = [pytest.mark.sqlite_only, pytest.mark.timeout(180)]

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


def demo_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(DEBUG="1", RUNBOARD_VAR_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    return env


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_demo_reaches_all_nine_states_with_a_consistent_audit_trail(tmp_path):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, MANAGE, "demo", "--port", "0", "--until-all-states",
         "--duration", "90", "--executors", "3", "--rate", "2", "--seed", "7"],
        env=demo_env(tmp_path), capture_output=True, text=True, timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 120
    assert "log in as: demo / " in result.stdout
    password = result.stdout.split("log in as: demo / ")[1].split()[0]
    assert len(password) >= 12

    database = sqlite3.connect(tmp_path / "runboard.sqlite3")
    rows = database.execute(
        "SELECT run_id, from_state, to_state FROM runs_transition ORDER BY run_id, id").fetchall()
    reached = {to_state for _, _, to_state in rows}
    assert reached == {state.value for state in RunState}

    trail: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for run_id, from_state, to_state in rows:
        trail[run_id].append((from_state, to_state))
    for run_id, moves in trail.items():
        assert moves[0][0] == "", f"run {run_id} has no creation row"
        for (_, previous), (source, target) in pairwise(moves):
            assert source == previous, f"run {run_id}: {moves}"
            assert can_move(source, target), f"run {run_id}: {source} → {target}"
    current = dict(database.execute("SELECT id, state FROM runs_run").fetchall())
    for run_id, moves in trail.items():
        assert current[run_id] == moves[-1][1]


def test_ctrl_c_stops_the_demo_and_its_server_with_no_orphans(tmp_path):
    demo = subprocess.Popen(
        [sys.executable, MANAGE, "demo", "--port", "0", "--executors", "2"],
        env=demo_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        for line in demo.stdout:
            if "first run in running" in line:
                break
        servers = children_of(demo.pid)
        assert servers, "the demo started no server process"
        demo.send_signal(signal.SIGINT)  # what Ctrl-C sends
        demo.wait(timeout=30)
        assert demo.returncode == 0
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in servers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in servers)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def descendants_of(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        children = [child for parent in frontier for child in children_of(parent)]
        found.extend(children)
        frontier = children
    return found


def test_sigterm_to_make_run_stops_the_demo_and_its_server_quickly(tmp_path):
    """make forwards SIGTERM to its recipe; the demo must be the one that gets it (the recipe
    execs it), stop its actors and server cleanly, and leave nothing behind."""
    env = {**demo_env(tmp_path), "PORT": "0", "DEMO_EXECUTORS": "2"}
    make = subprocess.Popen(["make", "-s", "run"], cwd=settings.BASE_DIR, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    family: list[int] = []
    try:
        for line in make.stdout:
            if "first run in running" in line:
                break
        family = descendants_of(make.pid)
        assert len(family) >= 2, "make started no demo and server"
        started = time.monotonic()
        make.send_signal(signal.SIGTERM)
        make.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in family) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in family), "processes outlived make"
        assert time.monotonic() - started < 10  # never the 15 s force-kill
        assert "Server stopped." in make.stdout.read()
    finally:
        if make.poll() is None:
            make.kill()
            make.wait()
        for pid in family:  # orphans of a failed run must not outlive the test
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
