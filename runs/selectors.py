"""Reads for the live board: exact counts per state and the newest cards per state.

Every query here is bounded and served by an index of `Run.Meta.indexes`:

- cards: "newest N in state S" (optionally of queue Q) walks `run_state_changed` or
  `run_queue_state` backwards and stops after N rows;
- counts: the history's exact totals per (queue, name, state), kept by the fold in the
  database, plus the log rows not folded yet (`runs.history.counts`). Nothing is cached in
  the process, so a deletion (retention) or a write from any process is counted at once; an
  exact `GROUP BY state` over a million runs would cost ~74 ms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Substr

from .cards import LIVE_FIELDS, live_data_from
from .history.counts import HistoryUnavailable, counts_now
from .models import Run, Transition
from .states import RunState

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


def _grouped(queryset: Any) -> dict[str, int]:
    return {row["state"]: row["n"]
            for row in queryset.order_by().values("state").annotate(n=Count("pk"))}


def state_counts(board_filter: BoardFilter = BoardFilter()) -> dict[str, int]:
    """Exact number of runs per state (every state present, zero included).

    From the history's count checkpoint (`runs.history.counts.counts_now`: the fold's totals
    plus the few log rows it has not folded yet, three small queries whatever the table's
    size); when no fold has counted yet, or it lags far behind, an exact `GROUP BY state`.
    Both are exact inside `consistent_read()`, which is how the hub reads them.
    """
    counts = dict.fromkeys((str(state) for state in RunState), 0)
    try:
        counts.update(counts_now(queue=board_filter.queue, name=board_filter.name))
    except HistoryUnavailable:
        counts.update(_grouped(board_filter.apply(Run.objects.all())))
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
