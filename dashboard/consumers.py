"""The board websocket, `ws/board/`: a snapshot (or exactly the missed changes) on connect,
coalesced deltas afterwards, every frame stamped with the change-log position it reaches.

Query string (what is watched):
    ?queue=<exact>&name=<substring>  the board, filtered (both optional)
    ?run=<uuid>                      one run (the run page)
    &after=<position>                a reconnect: the last `position` this client holds

Server → client frames:
    {"type": "snapshot", "view": "board", "at", "position", "filter": {"queue", "name"},
     "limit", "phases": [{"label", "states": [...]}],
     "columns": [{"state", "label", "colour", "phase", "terminal", "count",
                  "actions": [names the state allows], "cards": [live_data, newest first]}],
     "actions": {name: {"label", "past_tense", "needs_reason"}},
     "permitted_actions": [names this user holds]}
    {"type": "snapshot", "view": "run", "at", "position", "run": live_data, "label", "colour",
     "transitions": [{"id", "from", "to", "at", "actor", "reason", "attempt"}, oldest first],
     "transitions_truncated", "states": {state: {"label", "colour", "phase", "terminal",
     "actions"}}, "actions", "permitted_actions"}
    {"type": "deltas", "position", "deltas": [event, ...], "counts": {state: n}}
        one event per changed run: {"id", "version", "from", "to", "kind" ("created",
        "transition", "update", "deleted"), "at", "actor", "reason", "run"}, where from/to,
        kind, at, actor and reason are the run's latest change-log row and "run" is its card
        as read after it (null once the run is deleted). Apply one only if its version is
        newer than what you show. `counts` are the exact totals at `position` (board view;
        {} for a run view).
        A frame of many changes (a hub catching up on a backlog) comes in parts of at most
        about 512 KB: every part but the last is {"type": "deltas", "deltas": [...]}, with
        no position and no counts; the last part carries both.
    {"type": "deltas", "resumed": true, "position", "deltas", "counts",
     "permitted_actions"}
        the answer to a connect with `after=`: exactly the changes after that position (only
        the latest per run), instead of a snapshot. When the log no longer holds them (older
        than its retention) or they are too many, a snapshot comes instead.
    {"type": "error", "code": "invalid_json" | "invalid_message" | "unknown_type" |
     "rate_limited", "message": "..."}

Positions are opaque strings ("<txid>.<id>"); they are the same in every server process, so a
client may resume on any of them. Nothing is lost between a position and the frames after it:
the hub reads the database's change log (`dashboard.hub`), not messages.

Client → server: {"type": "resync"} asks for a fresh snapshot; {"type": "ping"} is answered
with {"type": "pong"}. The user's session and permissions are checked again for each of them.

Close codes: 4401 not logged in (or logged out since), 4400 bad query string, 4404 no such run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from importlib import import_module
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model

from runs.actions import permitted_actions
from runs.changelog.reader import Position
from runs.selectors import BoardFilter, newest_cards

from .board import board_snapshot, column_limit, read_run
from .direct_send import unsent_bytes
from .hub import Hub, Watcher, get_hub
from .workers import run_in_worker

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_LOGIN_REQUIRED = 4401
CLOSE_RUN_NOT_FOUND = 4404
MAX_CLIENT_MESSAGE = 4096
RESYNC_BURST = 5  # snapshots a client may ask for at once, then one per second
RESYNC_RATE = 1.0


def reload_user(session_key: str | None, user_pk: Any) -> Any:
    """The session's user as stored now (AnonymousUser once logged out), or, for a scope
    without a session, the active user with that primary key."""
    if session_key is None:
        return get_user_model().objects.filter(pk=user_pk, is_active=True).first()
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return auth.get_user(SimpleNamespace(session=store))


class BoardConsumer(AsyncJsonWebsocketConsumer):
    """Thin: checks who is asking, joins the process hub, sends snapshots; the hub sends deltas."""

    # The hub holds the only channel-layer subscription of this process; a consumer needs none.
    channel_layer_alias = None
    hub: Hub | None = None
    watcher: Watcher | None = None

    async def direct_send(self, message: dict[str, Any]) -> None:
        """How the hub writes a frame: the server's own `send` when the stack exposes it."""
        await self.scope.get("direct_send", self.base_send)(message)

    def unsent_bytes(self) -> int:
        """What this socket still has to write: the hub holds frames back from a slow tab."""
        return unsent_bytes(self.scope.get("direct_send"))

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        await self.accept()  # accept first so the browser sees our close code, not a 403
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=CLOSE_LOGIN_REQUIRED)
            return
        params = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.run_id: str | None = None
        if "run" in params:
            try:
                self.run_id = str(uuid.UUID(params["run"][0]))
            except ValueError:
                await self.close(code=CLOSE_BAD_REQUEST)
                return
            key: tuple[str, Any] = ("run", self.run_id)
        else:
            self.board_filter = BoardFilter.from_params(params)
            key = ("board", self.board_filter)
        self._snapshot_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._tokens, self._tokens_at = float(RESYNC_BURST), time.monotonic()
        after = Position.parse(params["after"][0]) if "after" in params else None
        self.hub = get_hub()
        self.watcher = await self.hub.join(self, key)
        if after is None or not await self.send_missed(after):
            await self.send_snapshot()

    async def disconnect(self, code: int) -> None:
        await self._leave_hub()
        for task in list(getattr(self, "_tasks", ())):
            task.cancel()

    async def close_with(self, code: int) -> None:
        """Stop watching at once (deltas must not follow a refusal), close, then let the hub
        stop if this was its last watcher: its shutdown (a database write) never delays the
        close."""
        if self.hub is not None and self.watcher is not None:
            watcher, self.watcher = self.watcher, None
            self.hub.detach(watcher)
        await self.close(code=code)
        if self.hub is not None:
            await self.hub.stop_if_idle()

    async def _leave_hub(self) -> None:
        if self.hub is not None and self.watcher is not None:
            watcher, self.watcher = self.watcher, None
            await self.hub.leave(watcher)

    # -- client messages ---------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None or len(text_data) > MAX_CLIENT_MESSAGE:
            await self.send_error("invalid_message", "send one JSON object as text, under 4 KB")
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.send_error("invalid_json", "that was not JSON")
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error("invalid_message", 'expected {"type": "..."}')
            return
        await self.receive_json(content)

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        kind = content["type"]
        if kind not in ("resync", "ping"):
            await self.send_error("unknown_type", f"unknown message type {kind[:40]!r}")
            return
        if self.watcher is None:
            return  # closing
        if not await self.recheck_user():
            return
        if kind == "ping":
            await self.send_json({"type": "pong", "at": time.time()})
        elif self._take_token():
            await self.send_snapshot(checked=True)
        else:
            await self.send_error("rate_limited", "too many resyncs: wait a second")

    async def send_error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(RESYNC_BURST, self._tokens + (now - self._tokens_at) * RESYNC_RATE)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def recheck_user(self) -> bool:
        """Reload the user from a fresh read of the session: a logout, a deactivation or a
        lost permission applies to the next thing this socket asks for."""
        session = self.scope.get("session")
        user = await run_in_worker(reload_user, getattr(session, "session_key", None),
                                   getattr(self.user, "pk", None))
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close_with(CLOSE_LOGIN_REQUIRED)
            return False
        self.user = user
        return True

    # -- snapshots ---------------------------------------------------------------------------------

    async def send_snapshot(self, *, checked: bool = False) -> None:
        """Read and send a snapshot; deltas held meanwhile follow it (versions dedupe them)."""
        async with self._snapshot_lock:
            watcher = self.watcher
            if watcher is None or self.hub is None:
                return
            if not checked and not await self.recheck_user():
                return
            # The stream's position now: every change after it reaches this socket as a delta,
            # and the cards read below are at least this new.
            position, counts = self.hub.rewind(watcher)
            if self.run_id is not None:
                snapshot = await run_in_worker(read_run, self.run_id, user=self.user)
                if snapshot is None:
                    await self.close_with(CLOSE_RUN_NOT_FOUND)
                    return
            else:
                snapshot = await run_in_worker(self._read_board)
                for column in snapshot["columns"]:
                    column["count"] = counts.get(column["state"], 0)
            snapshot["position"] = position.token()
            await self.send_json(snapshot)
            self.hub.mark_ready(watcher)

    async def send_missed(self, after: Position) -> bool:
        """A reconnect: send only what changed after `after`; False when a snapshot must do."""
        async with self._snapshot_lock:
            watcher = self.watcher
            if watcher is None or self.hub is None:
                return True
            frame = await self.hub.catch_up(watcher, after)
            if frame is None:
                return False
            frame["permitted_actions"] = await run_in_worker(permitted_actions, self.user)
            await self.send_json(frame)
            self.hub.mark_ready(watcher)
            return True

    def _read_board(self) -> dict[str, Any]:
        limit = column_limit()
        return board_snapshot(self.board_filter, user=self.user, counts={},
                              cards=newest_cards(self.board_filter, limit=limit), limit=limit)

    def hub_requests_snapshot(self) -> None:
        """The hub lost track of what this socket has (lagged or resubscribed)."""
        task = asyncio.get_running_loop().create_task(self.send_snapshot())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @classmethod
    async def encode_json(cls, content: dict[str, Any]) -> str:
        return json.dumps(content, separators=(",", ":"))

