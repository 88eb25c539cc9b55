"""The per-process hub: tails the database's change log once, fans coalesced frames out to the
sockets of this process.

A change is on the board because it is in the change log, and it is in the change log because
it committed (`runs.changelog`). Each process (each event loop) has one `Hub`, which reads the
log from its cursor — when a hint says it grew (in-process after a local commit, or a Redis
`PUBLISH` from another process) and at least every `LOG_POLL_INTERVAL` anyway — with one
query per round for the whole process plus one for the cards of the changed runs that anyone
here watches. Nothing depends on a message arriving: a lost hint costs one poll interval, a
writer killed right after its commit is read like any other, a restarted server starts from
the log's head and its clients resume from the positions they hold.

Data kept, all bounded:
- a `Stream` per distinct thing watched (a board filter, or one run): the latest card per
  changed run in order of change (older versions replaced) and, for boards, the exact counts
  (read once with the log rows they reflect, then moved by each later row: see `streams`);
- per watcher only a cursor into its stream: watchers of one filter at the same cursor (the
  usual case) share one encoded frame.

Delivery: the flusher sends at once when idle; under load it rests between rounds in
proportion to what a round costs, each frame carrying everything that accumulated and the
counts after it, so one frame is in flight per watcher at a time. A socket whose previous
frames are still unsent is held back and then gets one up-to-date frame; one that falls more
than `MAX_PENDING_RUNS` runs behind takes a fresh snapshot instead of growing memory.
While the reader works through a backlog (a hub starting behind, a long transaction that held
the log's watermark back), frames wait until it is read (at most `BACKLOG_FLUSH_INTERVAL`, 2 s), so
each watcher gets every changed run once, not once per batch. A large frame goes out in parts
(`delta_frames`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import weakref
from collections import Counter
from datetime import datetime
from typing import Any

from django.utils import timezone

from runs.changelog import hints
from runs.changelog.feed import Batch, read_batch, read_missed
from runs.changelog.pruning import forget_reader, note_reader
from runs.changelog.reader import LogRow, Position, head, newest_at
from runs.conf import runboard_setting
from runs.selectors import BoardFilter

from .streams import MAX_PENDING_RUNS, Stream, StreamKey, Subscriber, Watcher
from .workers import run_in_worker

logger = logging.getLogger(__name__)

# Under load the flusher rests after each round for FLUSH_REST_RATIO times what the round
# cost (capped), so that frames coalesce instead of the loop drowning in sends; when idle a
# round is cheap and the next change goes out at once.
FLUSH_REST_RATIO = 2.0
MAX_FLUSH_REST = 0.05
SLOW_SOCKET_BYTES = 64 * 1024  # unsent bytes beyond which a socket's next frame waits
SLOW_SOCKET_RETRY = 0.05
SENDS_PER_YIELD = 64  # a long round yields to the loop now and then
# A frame of many changes (a hub catching up on a backlog) goes out in parts of at most this
# many bytes: daphne refuses to send a websocket message over 1 MiB (its
# `websocket_max_message_size`), and a refused frame would be a change lost to that watcher.
MAX_FRAME_BYTES = 512 * 1024
# Log rows per read; a full batch is followed by the next read at once. Each read also reads
# the cards of the runs it touched, so in a backlog fewer, larger reads read each card fewer
# times (100,000 rows over 2,000 runs: 10 card reads instead of 50).
LOG_BATCH = 10_000
# While reading a backlog (full batches back to back) frames wait until the backlog is read,
# so that each carries every changed run once instead of once per batch: catching up on
# 100,000 rows over 2,000 runs sent every watcher 50 frames of 2,000 cards (1.7 MB each) and
# took 95 s. They still go out at least this often (a board catching up moves every 2 s; at
# 0.5 s each watcher got 7 frames of every run instead of 2), and before a stream's pending
# runs near `MAX_PENDING_RUNS` (past it, its watchers would need a snapshot).
BACKLOG_FLUSH_INTERVAL = 2.0
CATCH_UP_MAX = 5_000  # rows a reconnecting client may have missed before it gets a snapshot
READER_NOTE_INTERVAL = 10.0  # how often the hub records its position for pruning
RETRY_AFTER_ERROR = 1.0
HELD_BACK_POLL = 0.1  # seconds between reads while committed rows wait above the watermark


def poll_interval() -> float:
    return float(runboard_setting("LOG_POLL_INTERVAL", 1.0))


class Hub:
    """One event loop's reader of the change log and its local fan-out."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.streams: dict[StreamKey, Stream] = {}
        self.position = Position()
        self.last_row_at: datetime | None = None  # `at` of the newest row taken in
        self.caught_up_at: datetime | None = None  # when a read last reached the head
        self.held_back = False  # committed rows wait above the watermark (PostgreSQL)
        self.redis_connected: bool | None = None  # None: no Redis configured
        self.stats = {"rounds": 0, "rows": 0, "frames": 0, "deliveries": 0, "hints": 0}
        self.moves: Counter[str] = Counter()
        self.active = False
        self._hinted = asyncio.Event()
        self._wake = asyncio.Event()  # the flusher's
        self._count_requests: dict[BoardFilter, asyncio.Future] = {}
        self._tasks: list[asyncio.Task] = []
        self._stop_listening: Any = None
        self._lifecycle = asyncio.Lock()
        self._flush_lock = asyncio.Lock()
        self._round_lock = asyncio.Lock()
        self._noted_at = 0.0
        self._deferred = False  # a backlog batch was taken without waking the flusher

    # -- watchers --------------------------------------------------------------------------------

    async def join(self, subscriber: Subscriber, key: StreamKey) -> Watcher:
        """Start tailing the log (once per process) and holding deltas for `subscriber`."""
        async with self._lifecycle:
            if not self.active:
                await self._start()
            stream = self.streams.get(key)
            if stream is None:
                stream = self.streams[key] = Stream(key)
                stream.position = self.position
            watcher = Watcher(subscriber, stream)
            stream.watchers.add(watcher)
        if stream.board_filter is not None and stream.counts is None:
            await self._counts_ready(stream)
        return watcher

    async def leave(self, watcher: Watcher) -> None:
        self.detach(watcher)
        await self.stop_if_idle()

    def detach(self, watcher: Watcher) -> None:
        """No frame reaches `watcher` from now on (no I/O, so a refusal can close at once)."""
        stream = watcher.stream
        stream.watchers.discard(watcher)
        if not stream.watchers and self.streams.get(stream.key) is stream:
            del self.streams[stream.key]

    async def stop_if_idle(self) -> None:
        """Stop tailing the log once nobody in this process watches anything."""
        async with self._lifecycle:
            if not self.streams and self.active:
                await self._stop()

    def rewind(self, watcher: Watcher) -> tuple[Position, dict[str, int]]:
        """A snapshot (or catch-up) is about to be read: deltas from here on, none before.
        Returns the log position and counts the stream has reached at this instant."""
        watcher.ready = False
        watcher.cursor = watcher.stream.seq
        return watcher.stream.position, dict(watcher.stream.counts or {})

    def mark_ready(self, watcher: Watcher) -> None:
        """The snapshot went out: deliver what accumulated since `rewind`."""
        watcher.ready = True
        self._wake.set()

    async def _counts_ready(self, stream: Stream) -> None:
        assert stream.board_filter is not None
        future = self._count_requests.get(stream.board_filter)
        if future is None:
            future = self._count_requests[stream.board_filter] = self.loop.create_future()
            self._hinted.set()  # the next round counts it
        await asyncio.shield(future)

    async def catch_up(self, watcher: Watcher, after: Position) -> dict[str, Any] | None:
        """The deltas frame for a client that reconnects holding `after`: exactly the changes
        it missed, or None when the log no longer holds them (it then takes a snapshot)."""
        stream = watcher.stream
        until, counts = self.rewind(watcher)
        batch = await run_in_worker(read_missed, after, until=until, limit=CATCH_UP_MAX,
                                    wants=stream.matches)
        if batch is None:
            return None
        return {"type": "deltas", "resumed": True, "position": until.token(),
                "deltas": list(_events(batch.rows, batch.cards).values()), "counts": counts}

    # -- tailing the log -------------------------------------------------------------------------

    async def _start(self) -> None:
        self.position = await run_in_worker(head)
        self.caught_up_at = timezone.now()
        self.active = True
        self._stop_listening = hints.listen_here(self._hint_threadsafe)
        coroutines = [self._tail_forever(), self._flush_forever()]
        if hints.redis_url():
            self.redis_connected = False
            coroutines.append(hints.listen_on_redis(self._hint, connected=self._redis_link))
        self._tasks = [self.loop.create_task(coroutine) for coroutine in coroutines]

    async def _stop(self) -> None:
        self.active = False
        if self._stop_listening:
            self._stop_listening()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            await run_in_worker(forget_reader, self.name)
        except Exception:
            logger.warning("hub could not remove its reader row", exc_info=True)

    def _hint(self) -> None:
        self.stats["hints"] += 1
        self._hinted.set()

    def _hint_threadsafe(self) -> None:
        # Called by a committing thread of this process; the loop may already be closing.
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._hint)

    def _redis_link(self, up: bool) -> None:
        self.redis_connected = up

    async def _tail_forever(self) -> None:
        while True:
            # While committed rows wait above the watermark, look again soon: the transaction
            # that holds them back ends without a hint.
            wait = HELD_BACK_POLL if self.held_back else poll_interval()
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that lands as the hint
            # comes in, and this task would outlive the hub's stop (gh-86296).
            with contextlib.suppress(TimeoutError):  # the poll interval passed: read anyway
                async with asyncio.timeout(wait):
                    await self._hinted.wait()
            self._hinted.clear()
            try:
                flushed_at = time.monotonic()
                while await self.read_round():
                    # A backlog: read on; frames gather each run's latest change meanwhile.
                    if (time.monotonic() - flushed_at > BACKLOG_FLUSH_INTERVAL
                            or self._most_pending() > MAX_PENDING_RUNS // 2):
                        self._wake_deferred()
                        flushed_at = time.monotonic()
                    await asyncio.sleep(0)
                self._wake_deferred()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._wake_deferred()
                logger.exception("hub could not read the change log; retrying")
                await asyncio.sleep(RETRY_AFTER_ERROR)

    def _wake_deferred(self) -> None:
        if self._deferred:
            self._deferred = False
            self._wake.set()

    def _most_pending(self) -> int:
        return max((len(stream.entries) for stream in self.streams.values()), default=0)

    async def read_round(self) -> bool:
        """Read the next batch of the log into every stream; True when the batch was full."""
        async with self._round_lock:
            requests = dict(self._count_requests)
            try:
                batch = await run_in_worker(read_batch, self.position, limit=LOG_BATCH,
                                            wants=self._wanted, count_filters=list(requests))
            except BaseException as error:
                for future in requests.values():
                    if not future.done():
                        future.set_exception(error)
                        future.exception()  # retrieved: the joiners re-raise it
                for board_filter in requests:
                    self._count_requests.pop(board_filter, None)
                raise
            full = len(batch.rows) >= LOG_BATCH
            self.take(batch, wake=not full)
            for board_filter, future in requests.items():
                counts, counted = batch.counts[board_filter]
                stream = self.streams.get(("board", board_filter))
                if stream is not None and stream.counts is None:
                    stream.start_counting(counts, counted)
                self._count_requests.pop(board_filter, None)
                future.set_result(None)
            self.held_back = batch.held_back
            if not full and not batch.held_back:
                self.caught_up_at = timezone.now()
            await self._note_position()
            return full

    def _wanted(self, row: LogRow) -> bool:
        """Whether any stream of this process shows this row's run (its card is read)."""
        return any(stream.matches(row) for stream in list(self.streams.values()))

    def take(self, batch: Batch, *, wake: bool = True) -> None:
        """Take one batch read from the log into every stream (no I/O); `wake=False` leaves
        the frames for a later wake (`_wake_deferred`)."""
        self.stats["rounds"] += 1
        if not batch.rows:
            return
        self.stats["rows"] += len(batch.rows)
        for row in batch.rows:  # for /metrics: moves this process has read, by target state
            if row.to_state and row.from_state != row.to_state:
                self.moves[row.to_state] += 1
        self.position = batch.rows[-1].position
        self.last_row_at = batch.rows[-1].at
        streams = list(self.streams.values())
        touched: dict[int, tuple[Stream, set[str]]] = {}
        for row in batch.rows:
            for stream in streams:
                if stream.matches(row):
                    stream.move(row)
                    touched.setdefault(id(stream), (stream, set()))[1].add(row.run_id)
        events = _events(batch.rows, batch.cards)
        for stream, run_ids in touched.values():
            for run_id in run_ids:
                if run_id in events:  # else the stream began during the read: its snapshot has it
                    stream.put(events[run_id])
        for stream in streams:
            stream.position = self.position
        if touched and wake:
            self._wake.set()
        elif touched:
            self._deferred = True

    async def _note_position(self) -> None:
        now = time.monotonic()
        if now - self._noted_at < READER_NOTE_INTERVAL:
            return
        self._noted_at = now
        try:
            await run_in_worker(note_reader, self.name, self.position)
        except Exception:
            logger.warning("hub could not record its log position", exc_info=True)

    async def lag_seconds(self) -> float:
        """How far behind the newest committed change this hub's reading is (0 when caught
        up at its last read)."""
        return self.lag_behind(await run_in_worker(newest_at))

    def lag_behind(self, newest: datetime | None) -> float:
        """`lag_seconds` given when the newest committed change was written (no I/O)."""
        if newest is None or (self.caught_up_at is not None and newest <= self.caught_up_at):
            return 0.0
        reached = self.last_row_at or self.caught_up_at or newest
        return max(0.0, (newest - reached).total_seconds())

    # -- fan-out ---------------------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            started = time.perf_counter()
            await self.flush()
            # Under load, let the next frame gather what arrives meanwhile.
            rest = min(MAX_FLUSH_REST, (time.perf_counter() - started) * FLUSH_REST_RATIO)
            if rest > 0.001:
                await asyncio.sleep(rest)

    async def flush(self) -> None:
        """Send each ready watcher everything after its cursor, one frame per watcher."""
        async with self._flush_lock:  # one round at a time: one frame in flight per watcher
            await self._flush_round()

    async def _flush_round(self) -> None:
        sent, held_back = 0, False
        for stream in list(self.streams.values()):
            # Each entry is encoded once per round, whatever the number of cursor groups that
            # send it (after a backlog, watchers held back by their sockets sit at many).
            encoded: dict[int, str] = {}
            by_cursor: dict[int, list[Watcher]] = {}
            for watcher in stream.watchers:
                if watcher.ready and watcher.cursor < stream.seq:
                    by_cursor.setdefault(watcher.cursor, []).append(watcher)
            for cursor, watchers in by_cursor.items():
                if cursor < stream.trimmed_to:
                    for watcher in watchers:  # fell too far behind: a snapshot replaces deltas
                        watcher.ready = False
                        watcher.subscriber.hub_requests_snapshot()
                    continue
                seq, entries = stream.seq, stream.entries_after(cursor)
                texts = [encoded.get(number) or encoded.setdefault(
                    number, json.dumps(event, separators=(",", ":")))
                    for number, event in entries]
                messages = [{"type": "websocket.send", "text": text} for text in delta_frames(
                    stream.position.token(), texts,
                    dict(stream.counts) if stream.counts is not None else {})]
                for watcher in watchers:
                    # It may have left or rewound for a snapshot while we yielded.
                    if not (watcher.ready and watcher.cursor == cursor):
                        continue
                    if watcher.subscriber.unsent_bytes() > SLOW_SOCKET_BYTES:
                        # Its last frame is still in flight: it gets one frame with everything
                        # once it has drained, instead of a growing queue of stale ones.
                        held_back = True
                        continue
                    watcher.cursor = seq
                    await self._send(watcher, messages, len(entries))
                    sent += 1
                    if sent % SENDS_PER_YIELD == 0:
                        await asyncio.sleep(0)  # let the reader go on
            stream.trim()
        if held_back:
            self.loop.call_later(SLOW_SOCKET_RETRY, self._wake.set)

    async def _send(self, watcher: Watcher, messages: list[dict[str, Any]], events: int
                    ) -> None:
        try:
            for message in messages:
                await watcher.subscriber.direct_send(message)
        except Exception:
            logger.info("hub could not send to a watcher; it will reconnect", exc_info=True)
            return
        self.stats["frames"] += len(messages)
        self.stats["deliveries"] += events


def delta_frames(position: str, encoded: list[str], counts: dict[str, int]) -> list[str]:
    """The deltas frame for these events (each already JSON), in parts of at most about
    `MAX_FRAME_BYTES` when it is larger. Only the last part carries the position and the
    counts: a client that stops after an earlier part resumes from the position it held
    before, and versions make the repeats harmless."""
    parts: list[list[str]] = [[]]
    size = 0
    for text in encoded:
        if parts[-1] and size + len(text) > MAX_FRAME_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(text)
        size += len(text) + 1
    frames = ['{"type":"deltas","deltas":[' + ",".join(part) + "]}" for part in parts[:-1]]
    frames.append('{"type":"deltas","position":' + json.dumps(position) + ',"deltas":['
                  + ",".join(parts[-1]) + '],"counts":'
                  + json.dumps(counts, separators=(",", ":")) + "}")
    return frames


def _events(rows: list[LogRow], cards: dict[str, dict[str, Any] | None]
            ) -> dict[str, dict[str, Any]]:
    """One event per run: its newest log row and its card as read now (None: the run is
    gone). The card may already be newer than the row (a later change committed meanwhile);
    the event keeps the row's version, so the row of that later change, read next round, is
    still newer for clients and brings its own kind, actor and reason."""
    events: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.run_id not in cards:
            continue  # nobody here shows this run
        card = cards[row.run_id]
        events.pop(row.run_id, None)  # re-insert: the order is the order of the last change
        events[row.run_id] = {
            "id": row.run_id,
            "version": row.version,
            "from": row.from_state or None,
            "to": (card["state"] if card else row.to_state) or None,
            "kind": row.kind,
            "at": row.at.isoformat(),
            "actor": row.actor,
            "reason": row.reason,
            "run": card,
        }
    return events


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """This event loop's hub (one per server process; tests get one per test loop)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub(loop)
    return hub


def active_hubs() -> list[Hub]:
    return [hub for hub in list(_hubs.values()) if hub.active]


def shared_counts(board_filter: BoardFilter) -> dict[str, int] | None:
    """The exact counts a hub of this process already keeps for `board_filter`, or None.

    Lets a page load reuse what the hub maintains for its watchers instead of counting again
    (called from request threads: a dict lookup and a copy, no query, no await).
    """
    for hub in active_hubs():
        stream = hub.streams.get(("board", board_filter))
        if stream is not None and stream.counts is not None:
            return dict(stream.counts)
    return None
