"""No committed change can miss a board: real daphne processes, real writer processes that
exit or are killed, Redis stopped and started, a server killed and restarted. After each, a
watcher that rebuilds its board the way board.js does equals a fresh read of the database."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from django.conf import settings

from tests.api.live_servers import server_env, session_cookie, start_server, stop_server
from tests.dashboard.live_board import (
    PrivateRedis,
    Watcher,
    database_board,
    read_commits,
    start_writer,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.django_db(transaction=True)]

RECOVERY_SECONDS = 2.0  # the board equals the database this soon after a fault ends
EXITING_WRITERS = 20
HINTED_POLL = 10.0  # the hinted server's poll interval: anything sooner came by a hint


def poll_interval() -> float:
    return float(settings.RUNBOARD["LOG_POLL_INTERVAL"])


@pytest.fixture
def server() -> Iterator[tuple[dict[str, str], list[str]]]:
    """A server without Redis (hints in-process only); yields its env and [its url]."""
    env = server_env(redis=False)
    process, url = start_server(env)
    yield env, [url]
    stop_server(process)


def watch(url: str) -> Watcher:
    watcher = Watcher(lambda: url, session_cookie())
    assert watcher.connected.wait(20), "the watcher never got its snapshot"
    return watcher


def run_exiting_writers(env: dict[str, str], watcher: Watcher, *,
                        settle: float | None = None) -> list[float]:
    """EXITING_WRITERS processes, each committing one run's five changes and exiting at once;
    returns the seconds from each final commit to its arrival on the watcher's board."""
    finals = []
    for _ in range(0, EXITING_WRITERS, 2):  # two at a time: two cores also run the server
        writers = [start_writer(env, runs=1) for _ in range(2)]
        for writer in writers:
            lines = read_commits(writer, 5)
            assert writer.wait(timeout=30) == 0
            committed_at, run_id, state = lines[-1].split()
            finals.append((run_id, state, float(committed_at)))
    watcher.wait_until_equal((settle or poll_interval()) + 5)  # every change arrived
    with watcher.lock:
        arrived = dict(watcher.board.arrived)
    return [arrived[(run_id, state)] - committed for run_id, state, committed in finals]


def test_changes_from_writers_that_exit_right_after_committing_all_arrive_polling(server):
    env, (url,) = server
    watcher = watch(url)
    try:
        latencies = run_exiting_writers(env, watcher)
    finally:
        watcher.close()
    # No hint can reach this server from another process: its poll brings every change, each
    # on one of its next rounds. (How soon is measured by benchmarks/fanout.py, not here.)
    assert len(latencies) == EXITING_WRITERS
    assert max(latencies) < 3 * poll_interval(), sorted(latencies)


@pytest.mark.redis
def test_changes_from_writers_that_exit_right_after_committing_all_arrive_with_hints():
    # The server polls only every HINTED_POLL seconds: a change that arrives sooner came by
    # its Redis hint, which the writer published on its way out.
    env = {**server_env(redis=True), "LOG_POLL_INTERVAL": str(HINTED_POLL)}
    process, url = start_server(env)
    watcher = watch(url)
    try:
        latencies = run_exiting_writers(env, watcher, settle=HINTED_POLL)
    finally:
        watcher.close()
        stop_server(process)
    assert len(latencies) == EXITING_WRITERS
    assert max(latencies) < HINTED_POLL / 2, sorted(latencies)


def test_a_writer_killed_mid_burst_loses_nothing(server):
    env, (url,) = server
    watcher = watch(url)
    writer = start_writer(env, runs=0)
    try:
        read_commits(writer, 40)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        watcher.wait_until_equal(RECOVERY_SECONDS)
    finally:
        watcher.close()
    cards, _, _ = database_board()
    assert len(cards) >= 8  # the burst really committed runs before it was killed


@pytest.mark.redis
def test_redis_stopped_mid_burst_and_started_again_loses_nothing():
    redis = PrivateRedis()
    redis.start()
    env = {**server_env(redis=False), "REDIS_URL": redis.url,
           "HINT_CHANNEL": settings.RUNBOARD["HINT_CHANNEL"]}
    process, url = start_server(env)
    watcher = watch(url)
    writer = start_writer(env, runs=0)
    try:
        read_commits(writer, 20)
        redis.stop()
        read_commits(writer, 20)  # the writer goes on; its hints are lost
        redis.start()
        read_commits(writer, 20)
        writer.terminate()
        writer.wait()
        watcher.wait_until_equal(RECOVERY_SECONDS)
        assert watcher.board.snapshots == 1  # the socket itself never dropped
    finally:
        watcher.close()
        writer.kill()
        stop_server(process)
        redis.stop()


def test_a_server_killed_and_restarted_while_the_writer_goes_on_loses_nothing(server):
    env, urls = server
    first = start_server(env)
    urls_now = [first[1]]
    watcher = Watcher(lambda: urls_now[-1], session_cookie())
    assert watcher.connected.wait(20)
    writer = start_writer(env, runs=0)
    try:
        read_commits(writer, 20)
        watcher.wait_for_deltas()  # it holds a position to resume from
        first[0].send_signal(signal.SIGKILL)
        first[0].wait()
        read_commits(writer, 20)
        second, second_url = start_server(env)
        urls_now.append(second_url)
        read_commits(writer, 20)
        writer.terminate()
        writer.wait()
        watcher.wait_until_equal(RECOVERY_SECONDS + 5)  # includes reconnecting to the new one
        # It resumed from its position on the new server rather than taking a new snapshot.
        assert (watcher.board.snapshots, watcher.board.resumes) == (1, 1), watcher.errors[:3]
    finally:
        watcher.close()
        writer.kill()
        for process in (first[0], locals().get("second")):
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                process.wait(timeout=15)
