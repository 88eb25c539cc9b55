"""`manage.py clock`: ticks on an interval, at once again after a full batch, survives a database
hiccup, and exits cleanly (code 0) on SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection

from runs import services
from runs.clock import run_clock
from runs.models import Run
from runs.states import RunState

REPO = Path(settings.BASE_DIR)


@pytest.mark.django_db
def test_clock_once_ticks_and_logs_what_it_moved(make_run, now, caplog):
    due = make_run(RunState.SCHEDULED, scheduled_at=now - timedelta(seconds=1))
    with caplog.at_level(logging.INFO, logger="runs.clock"):
        call_command("clock", "--once")
    assert Run.objects.get(pk=due.pk).state == RunState.READY
    assert "clock tick: promoted=1" in caplog.text


def test_a_non_positive_interval_is_refused():
    with pytest.raises(CommandError):
        call_command("clock", "--interval", "0")


def run_in_thread(**kwargs) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    kwargs.setdefault("prune", lambda **_: 0)  # these tests count ticks, not prunings
    kwargs.setdefault("fold", lambda **_: 0)  # nor folds of the history
    kwargs.setdefault("prune_history", lambda **_: 0)  # nor its rollup retention
    thread = threading.Thread(target=lambda: result.append(run_clock(**kwargs)), daemon=True)
    thread.start()
    return thread, result


def test_a_full_batch_makes_the_clock_tick_again_without_waiting():
    stop = threading.Event()
    answers = [{"promoted": services.TICK_BATCH}, {"promoted": 7}]

    def tick():
        moved = answers.pop(0)
        if not answers:
            stop.set()
        return moved

    thread, ticks = run_in_thread(interval=3600, stop=stop, tick=tick)
    thread.join(timeout=10)
    assert not thread.is_alive(), "the clock waited an interval after a full batch"
    assert ticks == [2]


def test_the_clock_waits_the_interval_when_nothing_more_is_due_and_stops_on_the_event():
    stop = threading.Event()
    ticked = threading.Event()

    def tick():
        ticked.set()
        return {"promoted": 0}

    thread, ticks = run_in_thread(interval=3600, stop=stop, tick=tick)
    assert ticked.wait(timeout=10)
    thread.join(timeout=0.2)
    assert thread.is_alive()  # waiting out its interval, not ticking in a loop
    stop.set()
    thread.join(timeout=10)
    assert ticks == [1]


def test_a_database_error_is_logged_and_the_clock_keeps_going(caplog):
    stop = threading.Event()
    calls = []

    def tick():
        calls.append(1)
        if len(calls) == 1:
            raise DatabaseError("server closed the connection")
        stop.set()
        return {"promoted": 1}

    with caplog.at_level(logging.ERROR, logger="runs.clock"):
        assert run_clock(interval=0.01, stop=stop, tick=tick, prune=lambda **_: 0,
                         fold=lambda **_: 0, prune_history=lambda **_: 0) == 1
    assert "clock tick failed" in caplog.text


def database_url() -> str:
    """The test database as a URL, for a child process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_until(condition, *, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)  # polling a condition with a deadline, not waiting for a guess
    return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_clock_process_works_and_exits_cleanly_on_a_signal(make_run, now, signum):
    due = make_run(RunState.SCHEDULED, scheduled_at=now - timedelta(seconds=1))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "DATABASE_URL": database_url(), "LOG_LEVEL": "INFO"}
    clock = subprocess.Popen(
        [sys.executable, "manage.py", "clock", "--interval", "0.2"], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert wait_until(lambda: Run.objects.get(pk=due.pk).state == RunState.READY), \
            "the clock process never promoted the due run"
        clock.send_signal(signum)
        _, stderr = clock.communicate(timeout=30)
    finally:
        if clock.poll() is None:
            clock.kill()
            clock.communicate()
    assert clock.returncode == 0, stderr
    assert "clock started" in stderr and "promoted=1" in stderr and "clock stopped" in stderr
