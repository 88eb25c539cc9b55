"""What the hub keeps per thing watched: a stream (latest event per run, counts) and, per
socket, a cursor into it. No I/O here; `dashboard.hub` does the sending."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any, Protocol

from runs.selectors import BoardFilter

MAX_PENDING_RUNS = 5_000  # per stream; beyond it lagging watchers take a snapshot

StreamKey = tuple[str, Any]  # ("board", BoardFilter) | ("run", "<uuid>")


class Subscriber(Protocol):
    """What the hub needs of a consumer."""

    async def direct_send(self, message: dict[str, Any]) -> None: ...
    def unsent_bytes(self) -> int: ...
    def hub_requests_snapshot(self) -> None: ...


class Watcher:
    """One socket watching one stream: a cursor into the stream's pending log."""

    __slots__ = ("cursor", "ready", "stream", "subscriber")

    def __init__(self, subscriber: Subscriber, stream: Stream):
        self.subscriber = subscriber
        self.stream = stream
        self.cursor = stream.seq
        self.ready = False  # False while its snapshot is being read: hold deltas back


class Stream:
    """What every watcher of one board filter (or one run) shares."""

    def __init__(self, key: StreamKey):
        self.key = key
        self.board_filter: BoardFilter | None = key[1] if key[0] == "board" else None
        self.entries: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()
        self.seq = 0
        self.trimmed_to = 0  # entries up to this sequence number are gone
        self.watchers: set[Watcher] = set()
        self.counts: dict[str, int] | None = None
        self.counts_ready: asyncio.Future | None = None
        self.buffered_moves: list[tuple[str | None, str]] = []
        self.moves = 0  # count-changing events seen: a recount is adopted only if unchanged

    def add(self, event: dict[str, Any], moved: bool, stale: bool) -> None:
        """Take an event: counts move by its from → to; the card only if it is the newest."""
        run_id = event["id"]
        if moved and self.board_filter is not None:
            self.moves += 1
            if self.counts is None:
                self.buffered_moves.append((event["from"], event["to"]))
            else:
                apply_move(self.counts, event["from"], event["to"])
        current = self.entries.get(run_id)
        if current is not None and current[1]["version"] >= event["version"]:
            stale, event = True, current[1]  # keep (and, with new counts, resend) the newest
        if stale:
            if not moved:
                return  # an older version of a card: nothing to send
            self.seq += 1  # counts changed: a frame goes out, without the stale card
            if current is None:
                return
        else:
            self.seq += 1
        self.entries[run_id] = (self.seq, event)
        self.entries.move_to_end(run_id)
        while len(self.entries) > MAX_PENDING_RUNS:
            seq, _ = self.entries.popitem(last=False)[1]
            self.trimmed_to = seq

    def events_after(self, cursor: int) -> list[dict[str, Any]]:
        events = []
        for seq, event in reversed(self.entries.values()):
            if seq <= cursor:
                break
            events.append(event)
        events.reverse()
        return events

    def trim(self) -> None:
        """Forget entries every watcher has been sent."""
        floor = min((w.cursor for w in self.watchers), default=self.seq)
        while self.entries:
            seq, _ = next(iter(self.entries.values()))
            if seq > floor:
                break
            self.entries.popitem(last=False)
            self.trimmed_to = seq


def apply_move(counts: dict[str, int], source: str | None, target: str) -> None:
    if source:
        counts[source] = counts.get(source, 0) - 1
    counts[target] = counts.get(target, 0) + 1
