"""The per-process fan-out hub: one channel-layer subscription, coalesced frames to local sockets.

Why: a group member per watcher costs 200-400 µs of server CPU per delivered message (half of
it Channels' `aclose_old_connections()` hop before every consumer dispatch), so 500 watchers
saturate one process at about 8 transitions a second. Instead each process (each event loop)
has one `Hub`, whose single channel is the only member of `HUB_GROUP`. It receives every
committed event once and writes frames straight to its consumers' `base_send`.

Data kept, all bounded:
- a `Stream` per distinct thing watched (a board filter, or one run): the latest event per
  changed run in arrival order (`entries`, each stamped with a sequence number; older
  versions of a run are replaced, so intermediate versions are dropped) and, for boards, the
  exact count per state, started from one real count and moved by each event's from → to;
- per watcher only a cursor: the sequence number it has been sent up to. Its pending deltas
  are the stream entries after its cursor, so watchers of one filter share one pending log
  and, when they are at the same cursor (the usual case), one encoded frame.

Delivery: the flusher sends at once when idle; under load it sends at most one frame per
`FRAME_INTERVAL`, each frame carrying everything that accumulated (latest version per run)
and the counts after it, so one frame is in flight per watcher at a time. Entries every
watcher has been sent are trimmed; if a stalled watcher falls more than `MAX_PENDING_RUNS`
runs behind, it is asked to take a fresh snapshot instead of growing memory.

Counts heal themselves: every `RECOUNT_INTERVAL` each board stream is recounted in a worker
thread and the recount adopted when no event for it arrived around the query.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections import OrderedDict
from typing import Any, Protocol

from channels.layers import get_channel_layer

from runs import selectors
from runs.selectors import BoardFilter

from .workers import run_in_worker

logger = logging.getLogger(__name__)

HUB_GROUP = "runboard.hub"
RUN_CHANGED = "run.changed"
FRAME_INTERVAL = 0.04  # seconds between frames to one stream under load
MAX_PENDING_RUNS = 5_000  # per stream; beyond it lagging watchers take a snapshot
SEEN_EVENTS = 20_000  # (run, version) pairs remembered to drop duplicate messages
RECOUNT_INTERVAL = 15.0
RECOUNT_QUIET = 0.5  # no event may arrive this long after a recount for it to be adopted
GROUP_REFRESH_INTERVAL = 3600.0  # channel layers expire group membership (Redis: 24 h)


class Subscriber(Protocol):
    """What the hub needs of a consumer."""

    async def base_send(self, message: dict[str, Any]) -> None: ...
    def hub_requests_snapshot(self) -> None: ...


StreamKey = tuple[str, Any]  # ("board", BoardFilter) | ("run", "<uuid>")


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


class Hub:
    """One event loop's subscription to the board group and its local fan-out."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.streams: dict[StreamKey, Stream] = {}
        self.seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.newest: OrderedDict[str, int] = OrderedDict()  # run id -> newest version taken
        self.stats = {"messages": 0, "frames": 0, "deliveries": 0, "recounts_adopted": 0}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._lifecycle = asyncio.Lock()

    @property
    def active(self) -> bool:
        return self.channel is not None

    # -- watchers --------------------------------------------------------------------------------

    async def join(self, subscriber: Subscriber, key: StreamKey) -> Watcher:
        """Subscribe (once per process) and start holding deltas for `subscriber`."""
        async with self._lifecycle:
            if self.channel is None:
                await self._start()
            stream = self.streams.get(key)
            if stream is None:
                stream = self.streams[key] = Stream(key)
            watcher = Watcher(subscriber, stream)
            stream.watchers.add(watcher)
        if stream.board_filter is not None:
            await self._ensure_counts(stream)
        return watcher

    async def leave(self, watcher: Watcher) -> None:
        async with self._lifecycle:
            stream = watcher.stream
            stream.watchers.discard(watcher)
            if not stream.watchers and self.streams.get(stream.key) is stream:
                del self.streams[stream.key]
            if not self.streams and self.channel is not None:
                await self._stop()

    def rewind(self, watcher: Watcher) -> None:
        """A snapshot is about to be read: deltas from here on, none before."""
        watcher.ready = False
        watcher.cursor = watcher.stream.seq

    def mark_ready(self, watcher: Watcher) -> None:
        """The snapshot went out: deliver what accumulated since `rewind`."""
        watcher.ready = True
        self._wake.set()

    def counts_for(self, watcher: Watcher) -> dict[str, int]:
        return dict(watcher.stream.counts or {})

    async def _ensure_counts(self, stream: Stream) -> None:
        if stream.counts is not None:
            return
        if stream.counts_ready is None:
            stream.counts_ready = self.loop.create_future()
            try:
                counts = await run_in_worker(selectors.state_counts, stream.board_filter)
            except BaseException as error:
                stream.counts_ready.set_exception(error)
                stream.counts_ready.exception()  # mark retrieved; joiners re-raise below
                stream.counts_ready = None
                raise
            # Events that arrived during the count most likely committed after it began.
            for source, target in stream.buffered_moves:
                apply_move(counts, source, target)
            stream.buffered_moves.clear()
            stream.counts = counts
            stream.counts_ready.set_result(None)
        else:
            await asyncio.shield(stream.counts_ready)

    # -- subscription ----------------------------------------------------------------------------

    async def _start(self) -> None:
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(HUB_GROUP, self.channel)
        self._tasks = [self.loop.create_task(coro) for coro in
                       (self._read(), self._flush_forever(), self._housekeeping())]

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        channel, self.channel = self.channel, None
        try:
            await self.layer.group_discard(HUB_GROUP, channel)
        except Exception:  # the membership expires anyway
            logger.warning("hub could not leave %s", HUB_GROUP, exc_info=True)

    async def _read(self) -> None:
        backoff = 0.5
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis went away or timed out: messages may be lost, so every watcher takes
                # a fresh snapshot once the subscription is back.
                logger.warning("hub receive failed; resubscribing in %.1fs", backoff,
                               exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                await self._resubscribe()
                continue
            backoff = 0.5
            if message.get("type") == RUN_CHANGED and isinstance(message.get("event"), dict):
                self.stats["messages"] += 1
                self.deliver(message["event"])

    async def _resubscribe(self) -> None:
        try:
            await self.layer.group_add(HUB_GROUP, self.channel)
        except Exception:
            logger.warning("hub could not rejoin %s", HUB_GROUP, exc_info=True)
            return
        for stream in list(self.streams.values()):
            for watcher in list(stream.watchers):
                watcher.subscriber.hub_requests_snapshot()

    def deliver(self, event: dict[str, Any]) -> None:
        """Take one committed event into every stream it belongs to (no I/O, no query)."""
        try:
            identity = (event["id"], int(event["version"]))
            run = event.get("run") or {}
        except (KeyError, TypeError, ValueError):
            logger.warning("hub dropped a malformed event: %r", event)
            return
        if identity in self.seen:
            return  # the same message twice: counts must move once
        self.seen[identity] = None
        if len(self.seen) > SEEN_EVENTS:
            self.seen.popitem(last=False)
        # Older than a version already taken (messages from two processes can cross): its
        # from → to still counts, but its card must never replace a newer one.
        stale = identity[1] < self.newest.get(identity[0], 0)
        if not stale:
            self.newest[identity[0]] = identity[1]
            self.newest.move_to_end(identity[0])
            if len(self.newest) > SEEN_EVENTS:
                self.newest.popitem(last=False)
        moved = event.get("from") != event.get("to")
        for stream in list(self.streams.values()):
            if stream.board_filter is not None:
                if stream.board_filter.matches(run):
                    stream.add(event, moved, stale)
            elif stream.key[1] == event["id"]:
                stream.add(event, moved, stale)
        self._wake.set()

    # -- fan-out ---------------------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            started = self.loop.time()
            await self.flush()
            # Under load, let the next frame gather what arrives meanwhile.
            rest = FRAME_INTERVAL - (self.loop.time() - started)
            if rest > 0:
                await asyncio.sleep(rest)

    async def flush(self) -> None:
        """Send each ready watcher everything after its cursor, one frame per watcher."""
        for stream in list(self.streams.values()):
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
                events = stream.events_after(cursor)
                frame = json.dumps({
                    "type": "deltas",
                    "deltas": events,
                    "counts": dict(stream.counts) if stream.counts is not None else {},
                }, separators=(",", ":"))
                message = {"type": "websocket.send", "text": frame}
                for watcher in watchers:
                    await self._send(watcher, message, stream.seq, len(events))
            stream.trim()

    async def _send(self, watcher: Watcher, message: dict[str, Any], seq: int,
                    events: int) -> None:
        watcher.cursor = seq
        try:
            await watcher.subscriber.base_send(message)
        except Exception:
            logger.info("hub could not send to a watcher; it will reconnect", exc_info=True)
            return
        self.stats["frames"] += 1
        self.stats["deliveries"] += events

    # -- healing ---------------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        last_group_refresh = time.monotonic()
        while True:
            await asyncio.sleep(RECOUNT_INTERVAL)
            for stream in list(self.streams.values()):
                if stream.board_filter is not None and stream.counts is not None:
                    try:
                        await self.recount(stream)
                    except Exception:
                        logger.warning("hub recount failed", exc_info=True)
            if time.monotonic() - last_group_refresh > GROUP_REFRESH_INTERVAL:
                await self._resubscribe_quietly()
                last_group_refresh = time.monotonic()

    async def _resubscribe_quietly(self) -> None:
        try:
            await self.layer.group_add(HUB_GROUP, self.channel)
        except Exception:
            logger.warning("hub could not refresh its group membership", exc_info=True)

    async def recount(self, stream: Stream, *, quiet: float = RECOUNT_QUIET) -> bool:
        """Recount a board stream off the loop; adopt the result if no event raced it."""
        moves_before = stream.moves
        await run_in_worker(selectors.refresh_rollup, stream.board_filter)
        counts = await run_in_worker(selectors.state_counts, stream.board_filter)
        await asyncio.sleep(quiet)  # an event committed before the count may still be coming
        if stream.moves != moves_before or self.streams.get(stream.key) is not stream:
            return False
        if counts != stream.counts:
            logger.warning("board counts for %s healed: %s -> %s",
                           stream.board_filter, stream.counts, counts)
            stream.counts = counts
            stream.seq += 1  # an empty delta frame carries the corrected counts
            self.stats["recounts_adopted"] += 1
            self._wake.set()
        return True


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """This event loop's hub (one per server process; tests get one per test loop)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub(loop)
    return hub


def running_hub_loop() -> asyncio.AbstractEventLoop | None:
    """The loop of a subscribed hub in this process, if any: sends are scheduled on it."""
    for loop, hub in list(_hubs.items()):
        if hub.active and loop.is_running() and not loop.is_closed():
            return loop
    return None


def active_hubs() -> list[Hub]:
    return [hub for hub in list(_hubs.values()) if hub.active]

