"""The change log is read in commit order without skipping: a row whose transaction took the
lower id but committed last is still delivered, once — by the reader and through a hub to a
watcher."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction

from runs.changelog.reader import Position, head, read_after
from runs.models import Change, Run
from runs.states import RunState

pytestmark = pytest.mark.django_db(transaction=True)


def cancel_and_hold(run_id, inserted: threading.Event, release: threading.Event,
                    taken: list[int]) -> None:
    """In its own connection: cancel the run (taking a log id), then keep the transaction open
    until told to commit."""
    try:
        with transaction.atomic():
            Run.objects.get(pk=run_id).transition_to(RunState.CANCELED, actor="slow")
            taken.append(Change.objects.filter(run_id=run_id).latest("id").id)
            inserted.set()
            assert release.wait(30)
    finally:
        connection.close()


def start_slow_writer(run_id) -> tuple[threading.Thread, threading.Event, int]:
    """The slow writer's thread, the event that lets it commit, and the log id it took."""
    inserted, release, taken = threading.Event(), threading.Event(), []
    slow = threading.Thread(target=cancel_and_hold, args=(run_id, inserted, release, taken))
    slow.start()
    assert inserted.wait(10)
    return slow, release, taken[0]


@pytest.mark.postgres
def test_the_lower_id_committed_last_is_read_after_it_commits_and_only_once(make_run):
    first, second = make_run(RunState.READY), make_run(RunState.READY)
    cursor = head()
    slow, release, low = start_slow_writer(first.pk)  # takes the lower id, commits last
    Run.objects.get(pk=second.pk).transition_to(RunState.CANCELED, actor="fast")
    high = Change.objects.get(run_id=second.pk, to_state="canceled")
    assert low < high.id  # the order of ids is not the order of commits

    # While the slow transaction is open, the reader stops below it: `WHERE id > cursor`
    # would hand out the high id now and skip the low one for good.
    assert cancellations(read_after(cursor, limit=100)) == []
    release.set()
    slow.join()
    rows = read_until_both(cursor, first, second)
    assert cancellations(rows) == [str(first.pk), str(second.pk)]
    assert cancellations(read_after(rows[-1].position, limit=100)) == []  # delivered once


def cancellations(rows) -> list[str]:
    # Only this test's moves: rows of other transactions (the runs' creation, if something
    # elsewhere on the server held the watermark back when `head()` was read) don't count.
    return [row.run_id for row in rows if row.to_state == "canceled"]


def read_until_both(cursor: Position, *runs) -> list:
    """Read on from `cursor` until both cancellations are in (the watermark may trail the
    commit by whatever else is running on the server), as a hub would, round after round."""
    rows: list = []
    deadline = time.monotonic() + 10
    while len(cancellations(rows)) < len(runs):
        assert time.monotonic() < deadline, rows
        rows += read_after(rows[-1].position if rows else cursor, limit=100)
    return rows


@pytest.mark.sqlite_only
def test_on_sqlite_id_order_is_commit_order(make_run):
    runs = [make_run(RunState.READY) for _ in range(3)]
    cursor = head()
    for run in reversed(runs):
        Run.objects.get(pk=run.pk).transition_to(RunState.CANCELED, actor="x")
    rows = read_after(cursor, limit=100)
    assert cancellations(rows) == [str(run.pk) for run in reversed(runs)]
    assert [row.position.id for row in rows] == sorted(row.position.id for row in rows)
    assert all(row.position.txid == 0 for row in rows)


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_a_watcher_gets_both_changes_when_the_lower_id_commits_last(
        socket_for, viewer, make_run):
    from dashboard.hub import get_hub

    first = await sync_to_async(make_run)(RunState.READY)
    second = await sync_to_async(make_run)(RunState.READY)
    socket = await socket_for(viewer)
    assert (await socket.receive_json_from(timeout=5))["type"] == "snapshot"
    hub = get_hub()
    rows_before = hub.stats["rows"]
    slow, release, _ = await sync_to_async(start_slow_writer, thread_sensitive=False)(first.pk)

    def cancel_second() -> None:
        Run.objects.get(pk=second.pk).transition_to(RunState.CANCELED, actor="fast")
    await sync_to_async(cancel_second, thread_sensitive=False)()
    release.set()
    await sync_to_async(slow.join, thread_sensitive=False)()

    seen: dict[str, str] = {}
    while set(seen) != {str(first.pk), str(second.pk)}:
        frame = await socket.receive_json_from(timeout=5)
        for event in frame["deltas"]:
            seen[event["id"]] = event["to"]
    assert seen == {str(first.pk): "canceled", str(second.pk): "canceled"}
    assert frame["counts"]["canceled"] == 2 and frame["counts"]["ready"] == 0
    assert hub.stats["rows"] - rows_before == 2  # each row read once
    await socket.disconnect()


def test_a_position_token_round_trips_and_forgeries_are_refused():
    position = Position(123, 456)
    assert Position.parse(position.token()) == position
    for forged in ("", "1", "a.b", "1.-2", "1.2.3", "9" * 60, None, 5):
        assert Position.parse(forged) is None


def hold_an_xid(taken: threading.Event, release: threading.Event) -> None:
    """An open transaction that has taken a transaction id and writes nothing (a report, a
    migration, a forgotten shell): it holds the log's watermark and ends without a hint."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()")
            taken.set()
            assert release.wait(30)
    finally:
        connection.close()


@pytest.mark.postgres
@pytest.mark.asyncio
async def test_rows_held_back_by_an_open_transaction_arrive_soon_after_it_ends_without_a_hint(
        socket_for, viewer, make_run, settings):
    from dashboard.hub import get_hub

    # Polls 30 s apart: what arrives sooner came by the hub looking again on its own.
    settings.RUNBOARD = {**settings.RUNBOARD, "LOG_POLL_INTERVAL": 30.0}
    run = await sync_to_async(make_run)(RunState.READY)
    socket = await socket_for(viewer)
    assert (await socket.receive_json_from(timeout=5))["type"] == "snapshot"
    hub = get_hub()
    taken, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_an_xid, args=(taken, release))
    holder.start()
    assert await sync_to_async(taken.wait, thread_sensitive=False)(10)

    def cancel() -> None:  # committed and hinted, but held back by the open transaction
        Run.objects.get(pk=run.pk).transition_to(RunState.CANCELED, actor="x")
    await sync_to_async(cancel, thread_sensitive=False)()
    deadline = time.monotonic() + 10
    while not hub.held_back:
        assert time.monotonic() < deadline, "the hub never saw the row held back"
        await asyncio.sleep(0.05)

    release.set()  # the holder commits: nothing is written, nobody is hinted
    await sync_to_async(holder.join, thread_sensitive=False)()
    frame = await socket.receive_json_from(timeout=5)  # far sooner than the 30 s poll
    while not any(e["id"] == str(run.pk) and e["to"] == "canceled" for e in frame["deltas"]):
        frame = await socket.receive_json_from(timeout=5)
    assert not hub.held_back
    await socket.disconnect()
