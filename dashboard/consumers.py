"""The board websocket, `ws/board/`: a snapshot on connect, coalesced deltas afterwards.

Query string (what is watched):
    ?queue=<exact>&name=<substring>  the board, filtered (both optional)
    ?run=<uuid>                      one run (the run page)

Server → client frames:
    {"type": "snapshot", "view": "board", "at", "filter": {"queue", "name"}, "limit",
     "phases": [{"label", "states": [...]}],
     "columns": [{"state", "label", "colour", "phase", "terminal", "count",
                  "actions": [names the state allows], "cards": [live_data, newest first]}],
     "actions": {name: {"label", "past_tense", "needs_reason"}},
     "permitted_actions": [names this user holds]}
    {"type": "snapshot", "view": "run", "at", "run": live_data, "label", "colour",
     "transitions": [{"id", "from", "to", "at", "actor", "reason", "attempt"}, oldest first],
     "transitions_truncated", "states": {state: {"label", "colour", "phase", "terminal",
     "actions"}}, "actions", "permitted_actions"}
    {"type": "deltas", "deltas": [run_changed event, ...], "counts": {state: n}}
        every event is `runs.events`' payload (id, version, from, to, kind, at, actor, reason,
        run); under load only the latest version of each run; apply one only if its version
        is newer than what you show. `counts` are the exact totals after these events
        (board view; {} for a run view). A frame may carry no events, only corrected counts.
    {"type": "error", "code": "invalid_json" | "invalid_message" | "unknown_type" |
     "rate_limited", "message": "..."}

Client → server: {"type": "resync"} asks for a fresh snapshot (send it after every
reconnect); {"type": "ping"} is answered with {"type": "pong"}. The user's session and
permissions are checked again for each of them.

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

from runs.selectors import BoardFilter, newest_cards

from .board import board_snapshot, column_limit, read_run
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

    hub: Hub | None = None
    watcher: Watcher | None = None

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
        self.hub = get_hub()
        self.watcher = await self.hub.join(self, key)
        await self.send_snapshot()

    async def disconnect(self, code: int) -> None:
        await self._leave_hub()
        for task in list(getattr(self, "_tasks", ())):
            task.cancel()

    async def close_with(self, code: int) -> None:
        """Stop watching at once, then close (deltas must not follow a refusal)."""
        await self._leave_hub()
        await self.close(code=code)

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
            self.hub.rewind(watcher)
            if self.run_id is not None:
                snapshot = await run_in_worker(read_run, self.run_id, user=self.user)
                if snapshot is None:
                    await self.close_with(CLOSE_RUN_NOT_FOUND)
                    return
            else:
                snapshot = await run_in_worker(self._read_board)
                counts = self.hub.counts_for(watcher)  # the hub's exact, shared counts
                for column in snapshot["columns"]:
                    column["count"] = counts.get(column["state"], 0)
            await self.send_json(snapshot)
            self.hub.mark_ready(watcher)

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

