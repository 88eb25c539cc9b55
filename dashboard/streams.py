"""What the hub keeps per thing watched: a stream (latest card per changed run, exact counts)
and, per socket, a cursor into it. No I/O here; `dashboard.hub` reads the log and sends."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any, Protocol

from runs.changelog.reader import LogRow, Position, Snapshot
from runs.selectors import BoardFilter

MAX_PENDING_RUNS = 5_000  # per stream; beyond it lagging watchers take a snapshot

StreamKey = tuple[str, Any]  # ("board", BoardFilter) | ("run", "<uuid>")


class Subscriber(Protocol):
    """What the hub needs of a consumer."""

    async def direct_send(self, message: dict[str, Any]) -> None: ...
    def unsent_bytes(self) -> int: ...
    def hub_requests_snapshot(self) -> None: ...


class Watcher:
    """One socket watching one stream: a cursor into the stream's pending entries."""

    __slots__ = ("cursor", "ready", "stream", "subscriber")

    def __init__(self, subscriber: Subscriber, stream: Stream):
        self.subscriber = subscriber
        self.stream = stream
        self.cursor = stream.seq
        self.ready = False  # False while its snapshot is being read: hold deltas back


class Stream:
    """What every watcher of one board filter (or one run) shares.

    `entries` holds the latest event per changed run in the order they changed, each stamped
    with a sequence number; a watcher's pending deltas are the entries after its cursor.
    `counts` (boards only) were read in one consistent read together with `counted`, the log
    rows that read already reflected; every later row moves them by its from → to, so they
    are exact by construction and never need a recount.
    """

    def __init__(self, key: StreamKey):
        self.key = key
        self.board_filter: BoardFilter | None = key[1] if key[0] == "board" else None
        self.run_id: str | None = key[1] if key[0] == "run" else None
        self.entries: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()
        self.seq = 0
        self.trimmed_to = 0  # entries up to this sequence number are gone
        self.watchers: set[Watcher] = set()
        self.counts: dict[str, int] | None = None
        self.counted: Snapshot | None = None
        self.counts_ready: asyncio.Future | None = None
        self.position = Position()  # the log position the entries and counts reach

    def matches(self, row: LogRow) -> bool:
        if self.run_id is not None:
            return row.run_id == self.run_id
        assert self.board_filter is not None
        return self.board_filter.matches({"queue": row.queue, "name": row.name})

    def start_counting(self, counts: dict[str, int], counted: Snapshot) -> None:
        self.counts, self.counted = counts, counted

    def move(self, row: LogRow) -> None:
        """Move the counts by one log row, unless the read they came from already had it."""
        if self.counts is None or row.from_state == row.to_state:
            return
        if self.counted is not None:
            if self.counted.includes(row.position):
                return
            if self.counted.passed_by(row.position):
                self.counted = None  # every later row is new to the counts
        apply_move(self.counts, row.from_state, row.to_state)

    def put(self, event: dict[str, Any]) -> None:
        """The run's latest card (or its removal) goes out with the next frame."""
        self.seq += 1
        run_id = event["id"]
        self.entries[run_id] = (self.seq, event)
        self.entries.move_to_end(run_id)
        while len(self.entries) > MAX_PENDING_RUNS:
            seq, _ = self.entries.popitem(last=False)[1]
            self.trimmed_to = seq

    def events_after(self, cursor: int) -> list[dict[str, Any]]:
        return [event for _, event in self.entries_after(cursor)]

    def entries_after(self, cursor: int) -> list[tuple[int, dict[str, Any]]]:
        """(sequence number, event) of every entry after `cursor`, oldest first."""
        entries = []
        for seq, event in reversed(self.entries.values()):
            if seq <= cursor:
                break
            entries.append((seq, event))
        entries.reverse()
        return entries

    def trim(self) -> None:
        """Forget entries every watcher has been sent."""
        floor = min((w.cursor for w in self.watchers), default=self.seq)
        while self.entries:
            seq, _ = next(iter(self.entries.values()))
            if seq > floor:
                break
            self.entries.popitem(last=False)
            self.trimmed_to = seq


def apply_move(counts: dict[str, int], source: str | None, target: str | None) -> None:
    if source:
        counts[source] = counts.get(source, 0) - 1
    if target:
        counts[target] = counts.get(target, 0) + 1
