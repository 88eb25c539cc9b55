"""The board as it was at a past moment: exact counts and the newest cards per column then.

Counts come from the history (`counts.counts_at`: the fold's totals minus the moves folded
since, exact at whole minutes). Cards come from the audit trail, walked backwards from the
moment on the `transition_at` index in keyset chunks: the first row met for a run is its
latest move before the moment, i.e. its state, attempt and lease holder then. The walk stops
when every column is full or after `WALK_LIMIT` rows (columns of long-idle runs may then show
fewer cards than their count; `cards_complete` says so).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q

from runs.audit import Transition
from runs.states import LEASE_HOLDING_STATES, RunState

from .counts import counted_moment, counts_at

WALK_CHUNK = 2_000
WALK_LIMIT = 20_000
RUN_COLUMNS = ("run__name", "run__queue", "run__priority", "run__max_attempts",
               "run__created_at", "run__scheduled_at", "run__rerun_of_id")


def _card(row: dict[str, Any]) -> dict[str, Any]:
    """A card as `runs.cards.live_data_from` shapes it, with what the audit row knew then;
    what only the run's current row holds (lease expiry, heartbeat, progress) stays empty."""
    state = RunState(row["to_state"])
    at = row["at"].isoformat()
    return {
        "id": str(row["run_id"]), "short_id": str(row["run_id"])[-8:],
        "name": row["run__name"], "queue": row["run__queue"], "priority": row["run__priority"],
        "state": str(state), "version": 0, "attempts": row["attempt"],
        "max_attempts": row["run__max_attempts"], "progress": None,
        "lease_owner": row["actor"] if state in LEASE_HOLDING_STATES else "",
        "lease_expires_at": None, "heartbeat_at": None, "next_attempt_at": None,
        "scheduled_at": row["run__scheduled_at"].isoformat(), "state_changed_at": at,
        "created_at": row["run__created_at"].isoformat(), "started_at": None,
        "finished_at": at if state.is_terminal else None,
        "suspend_reason": row["reason"] if state == RunState.SUSPENDED else "",
        "suspended_by": "", "budget": {}, "consumed": {},
        "error_summary": "", "rerun_of": (str(row["run__rerun_of_id"])
                                          if row["run__rerun_of_id"] else None),
    }


def board_at(moment: datetime, *, queue: str = "", name: str = "",
             limit: int = 50) -> dict[str, Any]:
    """Counts and cards per state just before `moment` (floored to its minute, or coarser
    where rollup retention keeps only coarser rows: `counted_moment`)."""
    moment = counted_moment(moment)
    counts = counts_at(moment, queue=queue, name=name, substring=True)
    rows = Transition.objects.filter(at__lt=moment)
    if queue:
        rows = rows.filter(run__queue=queue)
    if name:
        rows = rows.filter(run__name__icontains=name)
    # The walk reads three narrow columns per row; the card's columns (three of them
    # timestamps, whose parsing dominated the walk) are read for the chosen rows only.
    chosen: dict[str, list[int]] = {str(state): [] for state in RunState}
    wanted = {state for state, n in counts.items() if n > 0}
    seen: set[Any] = set()
    walked, after = 0, None
    while wanted and walked < WALK_LIMIT:
        chunk = rows if after is None else rows.filter(
            Q(at__lt=after[0]) | Q(at=after[0], id__lt=after[1]))
        batch = list(chunk.order_by("-at", "-id").values_list("id", "run_id", "to_state")
                     [:WALK_CHUNK])
        for transition_id, run_id, to_state in batch:
            if run_id in seen:
                continue
            seen.add(run_id)
            column = chosen[to_state]
            if len(column) < limit:
                column.append(transition_id)
                if len(column) >= min(limit, counts.get(to_state, 0)):
                    wanted.discard(to_state)
        walked += len(batch)
        if len(batch) < WALK_CHUNK:
            break
        last_id = batch[-1][0]
        after = (Transition.objects.filter(pk=last_id).values_list("at", flat=True).get(),
                 last_id)
    picked = [transition_id for ids in chosen.values() for transition_id in ids]
    details = {row["id"]: row for row in Transition.objects.filter(pk__in=picked).values(
        "id", "run_id", "to_state", "at", "attempt", "actor", "reason", *RUN_COLUMNS)}
    columns = {state: [_card(details[i]) for i in ids] for state, ids in chosen.items()}
    return {"at": moment, "counts": counts, "cards": columns, "cards_complete": not wanted}
