"""Worker subprocesses on the test database, and polling with a deadline."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.api.live_servers import MANAGE, server_env

T = TypeVar("T")


def wait_for(probe: Callable[[], T], *, timeout: float = 30.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Workers:
    """Starts `manage.py runboard_worker` children; stops whatever is left at teardown."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[subprocess.Popen] = []

    def start(self, *args: str) -> subprocess.Popen:
        log = open(self.log_dir / f"worker-{len(self.started)}.log", "w")  # noqa: SIM115
        worker = subprocess.Popen(
            [sys.executable, MANAGE, "runboard_worker", "--poll-interval", "0.05", *args],
            env={**server_env(redis=False), "LOG_LEVEL": "INFO"},
            stdout=log, stderr=subprocess.STDOUT, text=True,
        )
        worker.log_path = log.name  # type: ignore[attr-defined]
        self.started.append(worker)
        return worker

    def log(self, worker: subprocess.Popen) -> str:
        return Path(worker.log_path).read_text()  # type: ignore[attr-defined]

    def stop(self, worker: subprocess.Popen, timeout: float = 30) -> int:
        """SIGTERM and wait: the worker's exit status."""
        if worker.poll() is None:
            worker.terminate()
        return worker.wait(timeout=timeout)

    def close(self) -> None:
        for worker in self.started:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            # Shown by pytest only when the test failed.
            print(f"--- {worker.log_path} (exit {worker.returncode}) ---\n{self.log(worker)}")  # type: ignore[attr-defined]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(tmp_path)
    yield pool
    pool.close()
