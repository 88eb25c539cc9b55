"""Real processes for the live-board tests: a watcher that rebuilds its board from the socket
the way board.js does, the database's view to compare it with, writers and a private Redis."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Count
from websockets.sync import client as websockets_sync

from runs.models import Run
from runs.states import RunState

REPO = Path(settings.BASE_DIR)


class BoardMirror:
    """What a board.js tab shows: a card per run with its version, and the counts."""

    def __init__(self) -> None:
        self.cards: dict[str, tuple[str, int]] = {}  # run id -> (state, version)
        self.counts: dict[str, int] = {}
        self.position: str | None = None
        self.snapshots = 0
        self.resumes = 0
        self.arrived: dict[tuple[str, str], float] = {}  # (run id, state) -> first seen at

    def apply(self, frame: dict[str, Any]) -> None:
        now = time.time()
        if frame.get("type") == "snapshot":
            self.snapshots += 1
            self.cards = {card["id"]: (card["state"], card["version"])
                          for column in frame["columns"] for card in column["cards"]}
            self.counts = {column["state"]: column["count"] for column in frame["columns"]}
            self.position = frame["position"]
            for run_id, (state, _) in self.cards.items():
                self.arrived.setdefault((run_id, state), now)
        elif frame.get("type") == "deltas":
            self.resumes += bool(frame.get("resumed"))
            self.position = frame["position"]
            for event in frame["deltas"]:
                held = self.cards.get(event["id"], ("", 0))[1]
                if event["version"] <= held:
                    continue
                if event["run"] is None:
                    self.cards.pop(event["id"], None)
                    continue
                self.cards[event["id"]] = (event["run"]["state"], event["version"])
                self.arrived.setdefault((event["id"], event["run"]["state"]), now)
            if frame["counts"]:
                self.counts = dict(frame["counts"])


def database_board() -> tuple[dict[str, tuple[str, int]], dict[str, int], set[str]]:
    """The truth: every run's (state, version), the exact count per state, and the runs a
    board must show (the newest `BOARD_COLUMN_LIMIT` of each state)."""
    cards = {str(pk): (state, version)
             for pk, state, version in Run.objects.values_list("pk", "state", "version")}
    counts = dict.fromkeys((s.value for s in RunState), 0)
    for row in Run.objects.order_by().values("state").annotate(n=Count("pk")):
        counts[row["state"]] = row["n"]
    limit = settings.RUNBOARD["BOARD_COLUMN_LIMIT"]
    shown = {str(pk) for state in RunState for pk in
             Run.objects.filter(state=state).order_by("-state_changed_at", "-id")
             .values_list("pk", flat=True)[:limit]}
    return cards, counts, shown


class Watcher:
    """A websocket client on its own thread: snapshot, then deltas; on a dropped socket it
    reconnects (to whatever `url()` says now) with `?after=<last position>`, like board.js."""

    def __init__(self, url: Callable[[], str], cookie: str) -> None:
        self.url, self.cookie = url, cookie
        self.board = BoardMirror()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.connected = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            base = self.url()
            after = f"?after={self.board.position}" if self.board.position else ""
            try:
                with websockets_sync.connect(
                        base.replace("http://", "ws://") + f"/ws/board/{after}",
                        additional_headers={"Cookie": self.cookie, "Origin": base},
                        open_timeout=5) as connection:
                    while not self.stopped.is_set():
                        try:
                            text = connection.recv(timeout=0.2)
                        except TimeoutError:
                            continue
                        with self.lock:
                            self.board.apply(json.loads(text))
                        self.connected.set()
            except Exception as error:  # the server went away: reconnect, as a tab would
                self.errors.append(repr(error))
                self.connected.clear()
                self.stopped.wait(0.2)

    def matches_database(self) -> tuple[bool, str]:
        """Counts equal; every card shown has the run's current state and version; and every
        run a column must show (its newest ones) is shown."""
        cards, counts, must_show = database_board()
        with self.lock:
            shown, shown_counts = dict(self.board.cards), dict(self.board.counts)
        if shown_counts != counts:
            return False, f"counts {shown_counts} != {counts}"
        wrong = {run_id: (card, cards.get(run_id)) for run_id, card in shown.items()
                 if cards.get(run_id) != card}
        wrong.update({run_id: (None, cards[run_id]) for run_id in must_show - set(shown)})
        if wrong:
            return False, f"cards differ (shown, database): {wrong}"
        return True, ""

    def wait_until_equal(self, timeout: float) -> float:
        """Seconds until the board equals the database; fails after `timeout`."""
        started = time.monotonic()
        while True:
            equal, why = self.matches_database()
            if equal:
                return time.monotonic() - started
            assert time.monotonic() - started < timeout, why
            time.sleep(0.05)

    def wait_for_deltas(self, timeout: float = 10) -> None:
        """Until the board has taken at least one delta (it holds a position in the log)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if self.board.position not in (None, "0.0") and self.board.arrived:
                    return
            assert time.monotonic() < deadline, "no delta reached the watcher"
            time.sleep(0.05)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)


def start_writer(env: dict[str, str], runs: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.dashboard.writer", str(runs)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)


def read_commits(writer: subprocess.Popen, count: int) -> list[str]:
    """Wait until the writer has committed `count` more changes; return their lines."""
    assert writer.stdout is not None
    lines = []
    while len(lines) < count:
        line = writer.stdout.readline()
        assert line, f"the writer stopped early (exit {writer.poll()})"
        lines.append(line)
    return lines


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own on a free port, to stop and start at will."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.binary, self.port = binary, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
