"""The run lifecycle: the nine states and the one table of allowed moves.

This module is the only place that knows which state may follow which. Everything else —
`Run.transition_to`, the services, the board's buttons — asks it.
"""

from __future__ import annotations

from django.db import models


class RunState(models.TextChoices):
    """Where a run is in its lifecycle, in the order the board shows them."""

    SCHEDULED = "scheduled", "Scheduled"
    READY = "ready", "Ready"
    LEASED = "leased", "Leased"
    RUNNING = "running", "Running"
    RETRY_WAIT = "retry_wait", "Retry wait"
    SUSPENDED = "suspended", "Suspended"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES: frozenset[RunState] = frozenset(
    {RunState.COMPLETED, RunState.FAILED, RunState.CANCELED}
)

# The whole graph. Guards on top of it (times, attempts, leases) live in `runs.lifecycle`.
ALLOWED_MOVES: dict[RunState, frozenset[RunState]] = {
    RunState.SCHEDULED: frozenset({RunState.READY, RunState.CANCELED}),
    RunState.READY: frozenset({RunState.LEASED, RunState.CANCELED}),
    RunState.LEASED: frozenset({RunState.RUNNING, RunState.READY, RunState.CANCELED}),
    RunState.RUNNING: frozenset(
        {
            RunState.RETRY_WAIT,
            RunState.SUSPENDED,
            RunState.COMPLETED,
            RunState.FAILED,
            RunState.CANCELED,
        }
    ),
    RunState.RETRY_WAIT: frozenset({RunState.READY, RunState.FAILED, RunState.CANCELED}),
    RunState.SUSPENDED: frozenset({RunState.READY, RunState.CANCELED}),
    RunState.COMPLETED: frozenset(),
    RunState.FAILED: frozenset(),
    RunState.CANCELED: frozenset(),
}

# States that hold an executor's lease; leaving them clears it.
LEASE_HOLDING_STATES: frozenset[RunState] = frozenset({RunState.LEASED, RunState.RUNNING})

# How the board groups the columns. Order matters: it is the order of `RunState`.
PHASES: tuple[tuple[str, tuple[RunState, ...]], ...] = (
    ("Waiting to start", (RunState.SCHEDULED, RunState.READY)),
    ("In flight", (RunState.LEASED, RunState.RUNNING)),
    ("Paused", (RunState.RETRY_WAIT, RunState.SUSPENDED)),
    ("Done", (RunState.COMPLETED, RunState.FAILED, RunState.CANCELED)),
)


def can_move(source: RunState | str, target: RunState | str) -> bool:
    """Whether the table allows `source -> target` (guards not considered)."""
    return RunState(target) in ALLOWED_MOVES[RunState(source)]
