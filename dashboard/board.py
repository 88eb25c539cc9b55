"""What the board shows, built once for the page (first paint) and for websocket snapshots.

The client never restates the lifecycle: labels, colours, phases, which actions each state
allows and which actions this user holds all travel in the snapshot.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from runs import selectors
from runs.actions import ACTIONS, ACTIONS_BY_STATE, permitted_actions
from runs.changelog.reader import consistent_read
from runs.client import HEARTBEATS_PER_LEASE
from runs.conf import runboard_setting
from runs.presentation import ALERT_STATES, STATE_COLOURS
from runs.selectors import BoardFilter
from runs.states import PHASES, RunState

from .hub import shared_counts

# A running card is stale when this many expected heartbeats in a row did not come.
MISSED_HEARTBEATS_FOR_STALE = 2

# Cards in these states show the first line of the run's last error.
SHOWS_ERROR: frozenset[str] = frozenset({RunState.RETRY_WAIT, RunState.FAILED})

PHASE_OF: dict[str, str] = {str(state): phase for phase, states in PHASES for state in states}


def column_limit() -> int:
    return int(runboard_setting("BOARD_COLUMN_LIMIT", 50))


def _action_catalogue() -> dict[str, dict[str, Any]]:
    return {name: {"label": action.label, "past_tense": action.past_tense,
                   "needs_reason": action.needs_reason, "destructive": action.destructive}
            for name, action in ACTIONS.items()}


def heartbeat_policy() -> dict[str, int]:
    """How a card judges a lease holder's heartbeat: executors beat `per_lease` times per lease
    (runs.client), so the expected interval is the lease span over that; `stale_after_missed`
    missed beats make the card stale."""
    return {"per_lease": HEARTBEATS_PER_LEASE, "stale_after_missed": MISSED_HEARTBEATS_FOR_STALE}


def board_snapshot(board_filter: BoardFilter, *, user: Any, counts: dict[str, int],
                   cards: dict[str, list[dict[str, Any]]], limit: int) -> dict[str, Any]:
    """The board's `snapshot` frame (also embedded in the page for the first paint)."""
    return {
        "type": "snapshot",
        "view": "board",
        "at": timezone.now().isoformat(),
        "filter": board_filter.as_dict(),
        "limit": limit,
        "phases": [{"label": phase, "states": [str(s) for s in states]}
                   for phase, states in PHASES],
        "columns": [
            {
                "state": str(state),
                "label": state.label,
                "colour": STATE_COLOURS[state],
                "phase": PHASE_OF[str(state)],
                "terminal": state.is_terminal,
                "count": counts.get(str(state), 0),
                "actions": ACTIONS_BY_STATE[str(state)],
                "shows_error": state in SHOWS_ERROR,
                "alerts": state in ALERT_STATES,
                "cards": cards.get(str(state), []),
            }
            for state in RunState
        ],
        "actions": _action_catalogue(),
        "permitted_actions": permitted_actions(user),
        "heartbeat": heartbeat_policy(),
    }


def read_board(board_filter: BoardFilter, *, user: Any) -> dict[str, Any]:
    """Page first paint: cards from the database (bounded, indexed queries); counts from this
    process's hub when it already keeps them for this filter, else counted once here."""
    limit = column_limit()
    counts = shared_counts(board_filter)
    if counts is None:
        with consistent_read():  # the history's totals and the log's tail, at one moment
            counts = selectors.state_counts(board_filter)
    return board_snapshot(board_filter, user=user, counts=counts,
                          cards=selectors.newest_cards(board_filter, limit=limit), limit=limit)


def read_run(run_id: str, *, user: Any) -> dict[str, Any] | None:
    """One run's `snapshot` frame (the run page), or None when there is no such run."""
    found = selectors.run_with_transitions(run_id)
    if found is None:
        return None
    run, transitions, truncated = found
    return {
        "type": "snapshot",
        "view": "run",
        "at": timezone.now().isoformat(),
        "run": run,
        "label": RunState(run["state"]).label,
        "colour": STATE_COLOURS[RunState(run["state"])],
        "transitions": transitions,
        "transitions_truncated": truncated,
        "states": {str(s): {"label": s.label, "colour": STATE_COLOURS[s],
                            "phase": PHASE_OF[str(s)], "terminal": s.is_terminal,
                            "actions": ACTIONS_BY_STATE[str(s)]} for s in RunState},
        "actions": _action_catalogue(),
        "permitted_actions": permitted_actions(user),
    }
