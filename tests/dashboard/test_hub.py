"""The hub's fan-out on its own: fake sockets, hand-made log batches."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from datetime import UTC, datetime

import pytest

from dashboard.hub import get_hub
from runs.changelog.feed import Batch
from runs.changelog.reader import LogRow, Position

# The hub starts from the (empty) log's head, and its tail task runs beside these tests.
pytestmark = pytest.mark.django_db(transaction=True)
_ids = itertools.count(1)


class FakeSocket:
    """Records frames; can run a callback inside its first send (an event arriving mid-flush)."""

    def __init__(self, on_first_send=None):
        self.frames: list[dict] = []
        self.on_first_send = on_first_send
        self.snapshots_requested = 0
        self.backlog = 0

    async def direct_send(self, message: dict) -> None:
        self.frames.append(json.loads(message["text"]))
        if self.on_first_send is not None:
            callback, self.on_first_send = self.on_first_send, None
            callback()

    def unsent_bytes(self) -> int:
        return self.backlog

    def hub_requests_snapshot(self) -> None:
        self.snapshots_requested += 1

    def newest_version(self, run_id: str) -> int:
        return max((e["version"] for f in self.frames for e in f["deltas"] if e["id"] == run_id),
                   default=0)


def event(run_id: str, version: int, source: str, target: str) -> Batch:
    """A log batch of one row, with the run's card as read after it."""
    row = LogRow(position=Position(0, next(_ids)), run_id=run_id, version=version,
                 kind="transition", from_state=source, to_state=target, queue="default",
                 name="etl", at=datetime(2026, 1, 1, tzinfo=UTC), actor="", reason="")
    card = {"id": run_id, "name": "etl", "queue": "default", "state": target,
            "version": version}
    return Batch(rows=[row], cards={run_id: card})


@pytest.mark.asyncio
async def test_an_event_arriving_during_a_long_flush_is_sent_next_round_to_everyone():
    hub = get_hub()
    run_id = str(uuid.uuid4())
    sockets = [FakeSocket() for _ in range(200)]  # more than one yield's worth of sends
    sockets[0].on_first_send = lambda: hub.take(event(run_id, 3, "leased", "running"))
    watchers = [await hub.join(socket, ("run", run_id)) for socket in sockets]
    for watcher in watchers:
        watcher.ready = True
    hub.take(event(run_id, 2, "ready", "leased"))
    await hub.flush()
    await hub.flush()
    assert all(socket.newest_version(run_id) == 3 for socket in sockets)
    assert all(len(socket.frames) == 2 for socket in sockets)  # coalesced: one frame a round
    for watcher in watchers:
        await hub.leave(watcher)
    assert not hub.active


@pytest.mark.asyncio
async def test_a_burst_is_coalesced_to_the_latest_version_per_run():
    hub = get_hub()
    run_id = str(uuid.uuid4())
    socket = FakeSocket()
    watcher = await hub.join(socket, ("run", run_id))
    watcher.ready = True
    for version, (source, target) in enumerate(
            [("ready", "leased"), ("leased", "running"), ("running", "running"),
             ("running", "completed")], start=2):
        hub.take(event(run_id, version, source, target))
    await hub.flush()
    (frame,) = socket.frames
    assert [(e["version"], e["to"]) for e in frame["deltas"]] == [(5, "completed")]
    assert not watcher.stream.entries  # sent to every watcher: forgotten
    await hub.leave(watcher)


@pytest.mark.asyncio
async def test_a_slow_socket_is_held_back_and_then_gets_one_up_to_date_frame():
    hub = get_hub()
    run_id = str(uuid.uuid4())
    slow, fast = FakeSocket(), FakeSocket()
    watchers = [await hub.join(socket, ("run", run_id)) for socket in (slow, fast)]
    for watcher in watchers:
        watcher.ready = True
    slow.backlog = 10_000_000  # its earlier frames are still queued in the server
    hub.take(event(run_id, 2, "ready", "leased"))
    await hub.flush()
    hub.take(event(run_id, 3, "leased", "running"))
    await hub.flush()
    assert [len(f["deltas"]) for f in fast.frames] == [1, 1] and slow.frames == []
    slow.backlog = 0  # drained
    await hub.flush()
    (frame,) = slow.frames
    assert [e["version"] for e in frame["deltas"]] == [3]  # the stale version was never sent
    for watcher in watchers:
        await hub.leave(watcher)


def test_unsent_bytes_reads_daphnes_transport_buffer_and_defaults_to_zero():
    from functools import partial
    from types import SimpleNamespace

    from dashboard.direct_send import unsent_bytes

    async def handle_reply(protocol, message):  # daphne's send is partial(handle_reply, protocol)
        return None

    transport = SimpleNamespace(dataBuffer=b"x" * 100, offset=10, _tempDataLen=5)
    assert unsent_bytes(partial(handle_reply, SimpleNamespace(transport=transport))) == 95
    assert unsent_bytes(partial(handle_reply, SimpleNamespace(transport=None))) == 0
    assert unsent_bytes(handle_reply) == 0 and unsent_bytes(None) == 0


def test_counts_move_only_by_rows_their_consistent_read_did_not_see():
    from dashboard.streams import Stream
    from runs.changelog.reader import Snapshot
    from runs.selectors import BoardFilter

    def row(txid: int, change_id: int, source: str, target: str) -> LogRow:
        return LogRow(position=Position(txid, change_id), run_id="r", version=2,
                      kind="transition", from_state=source, to_state=target, queue="q",
                      name="n", at=datetime(2026, 1, 1, tzinfo=UTC), actor="", reason="")

    # PostgreSQL: the read saw every transaction below xmin 100 and 101, 103 (not 102, which
    # was still running, nor anything from 104 on).
    stream = Stream(("board", BoardFilter()))
    stream.start_counting({"ready": 5, "leased": 0},
                          Snapshot(xmin=100, xmax=104, in_progress=frozenset({102}),
                                   postgres=True))
    for txid, change_id in ((99, 7), (101, 3), (102, 2), (103, 9), (104, 1), (105, 4)):
        stream.move(row(txid, change_id, "ready", "leased"))
    assert stream.counts == {"ready": 2, "leased": 3}  # 102, 104 and 105 moved them
    assert stream.counted is None  # past xmax: nothing more to skip

    # SQLite: every row up to id 10 was seen.
    stream = Stream(("board", BoardFilter()))
    stream.start_counting({"ready": 2, "leased": 0}, Snapshot(last_id=10))
    for change_id in (9, 10, 11):
        stream.move(row(0, change_id, "ready", "leased"))
    stream.move(row(0, 12, "leased", "leased"))  # an update moves nothing
    assert stream.counts == {"ready": 1, "leased": 1}


@pytest.mark.asyncio
@pytest.mark.parametrize("turns", range(4))
async def test_a_hint_arriving_as_the_last_watcher_leaves_does_not_keep_the_hub_running(turns):
    # Python 3.11's asyncio.wait_for returns the awaited result instead of raising when the
    # cancel lands just as that result came in: the tail task read on, the hub's stop waited
    # for it forever, and (holding the hub's lifecycle lock) so did every later join.
    hub = get_hub()
    watcher = await hub.join(FakeSocket(), ("run", str(uuid.uuid4())))
    for _ in range(3):
        await asyncio.sleep(0)  # the tail task now waits for a hint
    hub._hint()  # as Redis or a committing thread of this process would
    for _ in range(turns):
        await asyncio.sleep(0)
    await asyncio.wait_for(hub.leave(watcher), timeout=5)
    assert not hub.active
    watcher = await hub.join(FakeSocket(), ("run", str(uuid.uuid4())))  # the hub starts again
    await asyncio.wait_for(hub.leave(watcher), timeout=5)
