"""The per-process fan-out hub: one channel-layer subscription, coalesced frames to local sockets.

Why: a group member per watcher costs 200-400 µs of server CPU per delivered message (half of
it Channels' `aclose_old_connections()` hop before every consumer dispatch), so 500 watchers
saturate one process at about 8 transitions a second. Instead each process (each event loop)
has one `Hub`, whose single channel is the only member of `HUB_GROUP` (read by
`dashboard.subscription`, on its own thread with Redis). It receives every committed event
once and writes frames straight to its consumers' sockets (`direct_send`: the server's own
`send`, see `dashboard.direct_send`), never through a channel-layer message or a consumer
dispatch per watcher.

Data kept, all bounded:
- a `Stream` per distinct thing watched (a board filter, or one run): the latest event per
  changed run in arrival order (`entries`, each stamped with a sequence number; older
  versions of a run are replaced, so intermediate versions are dropped) and, for boards, the
  exact count per state, started from one real count and moved by each event's from → to;
- per watcher only a cursor: the sequence number it has been sent up to. Its pending deltas
  are the stream entries after its cursor, so watchers of one filter share one pending log
  and, when they are at the same cursor (the usual case), one encoded frame.

Delivery: the flusher sends at once when idle; under load it rests between rounds in
proportion to what a round costs, each frame carrying everything that accumulated (latest
version per run) and the counts after it, so one frame is in flight per watcher at a time.
Entries every watcher has been sent are trimmed; if a stalled watcher falls more than
`MAX_PENDING_RUNS` runs behind, it is asked to take a fresh snapshot instead of growing memory.

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
from typing import Any

from channels.layers import get_channel_layer

from runs import selectors
from runs.selectors import BoardFilter

from .streams import Stream, StreamKey, Subscriber, Watcher, apply_move
from .subscription import Subscription
from .workers import run_in_worker

logger = logging.getLogger(__name__)

# Under load the flusher rests after each round for FLUSH_REST_RATIO times what the round
# cost (capped), so that frames coalesce instead of the loop drowning in sends; when idle a
# round is cheap and the next event goes out at once.
FLUSH_REST_RATIO = 2.0
MAX_FLUSH_REST = 0.05
SLOW_SOCKET_BYTES = 64 * 1024  # unsent bytes beyond which a socket's next frame waits
SLOW_SOCKET_RETRY = 0.05
SENDS_PER_YIELD = 64  # a long round yields to the loop now and then (the reader must not starve)
SEEN_EVENTS = 20_000  # (run, version) pairs remembered to drop duplicate messages
RECOUNT_INTERVAL = 15.0
RECOUNT_QUIET = 0.5  # no event may arrive this long after a recount for it to be adopted


class Hub:
    """One event loop's subscription to the board group and its local fan-out."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.subscription: Subscription | None = None
        self.streams: dict[StreamKey, Stream] = {}
        self.board_streams: list[Stream] = []
        self.seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.newest: OrderedDict[str, int] = OrderedDict()  # run id -> newest version taken
        self.stats = {"messages": 0, "frames": 0, "deliveries": 0, "recounts_adopted": 0}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._lifecycle = asyncio.Lock()
        self._flush_lock = asyncio.Lock()

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
                self._index_streams()
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
                self._index_streams()
            if not self.streams and self.channel is not None:
                await self._stop()

    def _index_streams(self) -> None:
        self.board_streams = [s for s in self.streams.values() if s.board_filter is not None]

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
        self.subscription = Subscription(self.loop, self.layer, self._take, self._gap)
        self.channel = await self.subscription.start()
        self._tasks = [self.loop.create_task(coro) for coro in
                       (self._flush_forever(), self._housekeeping())]

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.subscription.stop()
        self.channel = None

    def _take(self, event: dict[str, Any]) -> None:
        if self.channel is None:
            return  # stopped meanwhile
        self.stats["messages"] += 1
        self.deliver(event)

    def _gap(self) -> None:
        """Messages may have been lost: every watcher takes a fresh snapshot."""
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
        for stream in self.board_streams:  # a few distinct filters, however many watchers
            if stream.board_filter.matches(run):
                stream.add(event, moved, stale)
        run_stream = self.streams.get(("run", identity[0]))
        if run_stream is not None:
            run_stream.add(event, moved, stale)
        self._wake.set()

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
                seq, events = stream.seq, stream.events_after(cursor)
                frame = json.dumps({
                    "type": "deltas",
                    "deltas": events,
                    "counts": dict(stream.counts) if stream.counts is not None else {},
                }, separators=(",", ":"))
                message = {"type": "websocket.send", "text": frame}
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
                    await self._send(watcher, message, len(events))
                    sent += 1
                    if sent % SENDS_PER_YIELD == 0:
                        await asyncio.sleep(0)  # let the reader keep Redis busy
            stream.trim()
        if held_back:
            self.loop.call_later(SLOW_SOCKET_RETRY, self._wake.set)

    async def _send(self, watcher: Watcher, message: dict[str, Any], events: int) -> None:
        try:
            await watcher.subscriber.direct_send(message)
        except Exception:
            logger.info("hub could not send to a watcher; it will reconnect", exc_info=True)
            return
        self.stats["frames"] += 1
        self.stats["deliveries"] += events

    # -- healing ---------------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(RECOUNT_INTERVAL)
            for stream in list(self.streams.values()):
                if stream.board_filter is not None and stream.counts is not None:
                    try:
                        await self.recount(stream)
                    except Exception:
                        logger.warning("hub recount failed", exc_info=True)

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
