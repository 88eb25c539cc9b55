"""The hub on its own: fake sockets, hand-made events (no database)."""

from __future__ import annotations

import json
import uuid

import pytest

from dashboard.hub import get_hub


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


def event(run_id: str, version: int, source: str, target: str) -> dict:
    return {"id": run_id, "version": version, "from": source, "to": target, "kind": "transition",
            "at": "2026-01-01T00:00:00+00:00", "actor": "", "reason": "",
            "run": {"id": run_id, "name": "etl", "queue": "default", "state": target,
                    "version": version}}


@pytest.mark.asyncio
async def test_an_event_arriving_during_a_long_flush_is_sent_next_round_to_everyone():
    hub = get_hub()
    run_id = str(uuid.uuid4())
    sockets = [FakeSocket() for _ in range(200)]  # more than one yield's worth of sends
    sockets[0].on_first_send = lambda: hub.deliver(event(run_id, 3, "leased", "running"))
    watchers = [await hub.join(socket, ("run", run_id)) for socket in sockets]
    for watcher in watchers:
        watcher.ready = True
    hub.deliver(event(run_id, 2, "ready", "leased"))
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
        hub.deliver(event(run_id, version, source, target))
    hub.deliver(event(run_id, 3, "leased", "running"))  # a duplicate message: dropped
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
    hub.deliver(event(run_id, 2, "ready", "leased"))
    await hub.flush()
    hub.deliver(event(run_id, 3, "leased", "running"))
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
