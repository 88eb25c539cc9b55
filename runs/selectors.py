"""Reads for the live board: exact counts per state and the newest cards per state.

Every query here is bounded and served by an index of `Run.Meta.indexes`:

- cards: "newest N in state S" (optionally of queue Q) walks `run_state_changed` or
  `run_queue_state` backwards and stops after N rows;
- counts: the unfinished states are counted exactly (index-only on the `state` prefix; these
  are the runs still moving, a small part of a large table). Finished runs never leave their
  state, so their count is a *roll-up* — an exact count of finished rows whose
  `state_changed_at` is at or before a watermark, taken once in a while off the hot path —
  plus the rows that finished after the watermark (a short range scan of the same index).
  That keeps the board and the snapshot cheap at a million runs, where an exact
  `GROUP BY state` over the whole table costs ~74 ms.

The roll-up is exact as long as no write commits more than `ROLLUP_LAG` after the time it
stamps in `state_changed_at` (transactions are short), and runs are not deleted (after a bulk
delete, call `forget_rollups()`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Substr
from django.utils import timezone

from .cards import LIVE_FIELDS, live_data_from
from .models import Run, Transition
from .states import TERMINAL_STATES, RunState

FINISHED = tuple(sorted(str(state) for state in TERMINAL_STATES))
UNFINISHED = tuple(str(state) for state in RunState if state not in TERMINAL_STATES)

# Finished rows stamped within this margin of the roll-up may still be committing: leave them
# to the "since the watermark" query.
ROLLUP_LAG = timedelta(seconds=60)
# How old a roll-up may get before `refresh_rollup` redoes it (the range since the watermark
# grows meanwhile; the roll-up stays exact whatever its age).
ROLLUP_MAX_AGE = timedelta(minutes=10)
ROLLUP_CACHE_SIZE = 64
RUN_TRANSITIONS_LIMIT = 200
NAME_FILTER_MAX = 100
# Enough of `last_error` for its first line on a card (tracebacks can be megabytes).
ERROR_HEAD_CHARS = 2_000
QUEUE_FILTER_MAX = 100


@dataclass(frozen=True)
class BoardFilter:
    """What a board shows: runs of one queue (exact) and/or whose name contains a substring."""

    queue: str = ""
    name: str = ""

    @classmethod
    def from_params(cls, params: Any) -> BoardFilter:
        """Build from a QueryDict or a plain mapping of lists/strings (query string)."""
        def first(key: str) -> str:
            value = params.get(key, "") if hasattr(params, "get") else ""
            if isinstance(value, list | tuple):
                value = value[0] if value else ""
            return str(value or "").strip()
        return cls(queue=first("queue")[:QUEUE_FILTER_MAX], name=first("name")[:NAME_FILTER_MAX])

    def matches(self, run: dict[str, Any]) -> bool:
        """Whether a run (its `live_data`) belongs to this filter, without a query."""
        if self.queue and run.get("queue") != self.queue:
            return False
        return not self.name or self.name.casefold() in str(run.get("name", "")).casefold()

    def apply(self, queryset: Any) -> Any:
        if self.queue:
            queryset = queryset.filter(queue=self.queue)
        if self.name:
            # A substring cannot use a b-tree index: the state/queue prefix bounds the walk.
            queryset = queryset.filter(name__icontains=self.name)
        return queryset

    def as_dict(self) -> dict[str, str]:
        return {"queue": self.queue, "name": self.name}


# -- counts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rollup:
    watermark: datetime
    counts: dict[str, int]
    taken_at: datetime


_rollups: OrderedDict[BoardFilter, _Rollup] = OrderedDict()
_rollups_lock = threading.Lock()


def _grouped(queryset: Any) -> dict[str, int]:
    return {row["state"]: row["n"]
            for row in queryset.order_by().values("state").annotate(n=Count("pk"))}


def _take_rollup(board_filter: BoardFilter, now: datetime) -> _Rollup:
    watermark = now - ROLLUP_LAG
    counts = _grouped(board_filter.apply(
        Run.objects.filter(state__in=FINISHED, state_changed_at__lte=watermark)))
    rollup = _Rollup(watermark=watermark, counts=counts, taken_at=now)
    with _rollups_lock:
        _rollups[board_filter] = rollup
        _rollups.move_to_end(board_filter)
        while len(_rollups) > ROLLUP_CACHE_SIZE:
            _rollups.popitem(last=False)
    return rollup


def refresh_rollup(board_filter: BoardFilter, *, now: datetime | None = None) -> bool:
    """Redo the finished-runs roll-up for `board_filter` if it is missing or old (slow query:
    call it off the hot path). Returns whether it did."""
    now = now or timezone.now()
    with _rollups_lock:
        rollup = _rollups.get(board_filter)
    if rollup is not None and now - rollup.taken_at < ROLLUP_MAX_AGE:
        return False
    _take_rollup(board_filter, now)
    return True


def forget_rollups() -> None:
    """Drop every roll-up (after deleting runs, or between test databases)."""
    with _rollups_lock:
        _rollups.clear()


def state_counts(board_filter: BoardFilter = BoardFilter()) -> dict[str, int]:
    """Exact number of runs per state (every state present, zero included).

    Two indexed queries: unfinished states counted outright, finished states as the roll-up
    plus what finished since its watermark. The first call for a filter takes the roll-up.
    """
    with _rollups_lock:
        rollup = _rollups.get(board_filter)
    if rollup is None:
        rollup = _take_rollup(board_filter, timezone.now())
    runs = board_filter.apply(Run.objects.all())
    counts = dict.fromkeys((str(state) for state in RunState), 0)
    counts.update(_grouped(runs.filter(state__in=UNFINISHED)))
    recent = _grouped(runs.filter(state__in=FINISHED, state_changed_at__gt=rollup.watermark))
    for state in FINISHED:
        counts[state] = rollup.counts.get(state, 0) + recent.get(state, 0)
    return counts


# -- cards --------------------------------------------------------------------------------------


def newest_cards(board_filter: BoardFilter = BoardFilter(), *,
                 limit: int) -> dict[str, list[dict[str, Any]]]:
    """The `limit` most recently changed runs of each state (live_data, newest first).

    One query per state, each an index walk of at most `limit` rows, reading only the card's
    columns and the head of `last_error` (no model instances: at 9 x 50 cards they cost more
    than the queries). Finished cards also say who ended the run and why (`moved_by`,
    `moved_because`: the actor and reason of its last audit row, one probe of the
    `transition_run_order` index per card).
    """
    runs = board_filter.apply(Run.objects.all()).annotate(
        error_head=Substr("last_error", 1, ERROR_HEAD_CHARS))
    last_move = Transition.objects.filter(run=OuterRef("pk")).order_by("-id")
    columns: dict[str, list[dict[str, Any]]] = {}
    for state in RunState:
        rows = runs.filter(state=state).order_by("-state_changed_at", "-id")
        fields = [*LIVE_FIELDS, "error_head"]
        if state.is_terminal:
            rows = rows.annotate(moved_by=Subquery(last_move.values("actor")[:1]),
                                 moved_because=Subquery(last_move.values("reason")[:1]))
            fields += ["moved_by", "moved_because"]
        cards = []
        for row in rows.values(*fields)[:limit]:
            card = live_data_from(row, last_error=row["error_head"])
            if state.is_terminal:
                card["moved_by"] = row["moved_by"] or ""
                card["moved_because"] = row["moved_because"] or ""
            cards.append(card)
        columns[str(state)] = cards
    return columns


def cards_for(run_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """The cards of these runs (one query by primary key); None for a run that is gone."""
    wanted = list(run_ids)
    if not wanted:
        return {}
    found: dict[str, dict[str, Any] | None] = dict.fromkeys(wanted)
    rows = (Run.objects.filter(pk__in=wanted)
            .annotate(error_head=Substr("last_error", 1, ERROR_HEAD_CHARS))
            .values(*LIVE_FIELDS, "error_head"))
    for row in rows:
        found[str(row["id"])] = live_data_from(row, last_error=row["error_head"])
    return found


def run_with_transitions(run_id: Any) -> tuple[dict[str, Any], list[dict[str, Any]], bool] | None:
    """One run's card data and its latest transitions (oldest first), or None if unknown.

    Returns (live_data, transitions, truncated): at most RUN_TRANSITIONS_LIMIT transitions.
    """
    run = Run.objects.defer("payload", "result").filter(pk=run_id).first()
    if run is None:
        return None
    rows = list(Transition.objects.filter(run_id=run.pk).order_by("-id")
                .values("id", "from_state", "to_state", "at", "actor", "reason", "attempt")
                [:RUN_TRANSITIONS_LIMIT + 1])
    truncated = len(rows) > RUN_TRANSITIONS_LIMIT
    transitions = [
        {"id": row["id"], "from": row["from_state"] or None, "to": row["to_state"],
         "at": row["at"].isoformat(), "actor": row["actor"], "reason": row["reason"],
         "attempt": row["attempt"]}
        for row in reversed(rows[:RUN_TRANSITIONS_LIMIT])
    ]
    return run.live_data(), transitions, truncated
