"""Errors the domain raises. Each carries a machine-readable `code` that edges translate once:
HTTP status and JSON body, websocket error frame, admin message."""

from __future__ import annotations

from typing import Any


class RunError(Exception):
    """Base for every error `runs` raises on purpose."""

    code = "run_error"

    def __init__(self, message: str, *, run_id: Any = None, current_state: str | None = None):
        super().__init__(message)
        self.message = message
        self.run_id = run_id
        self.current_state = current_state


class RunNotFound(RunError):
    """No run has that id."""

    code = "not_found"


class InvalidInput(RunError):
    """A service was given a value it cannot accept (negative budget, unknown field)."""

    code = "invalid"


class TransitionError(RunError):
    """A state change did not happen; nothing was written."""

    code = "transition_error"


class TransitionNotAllowed(TransitionError):
    """The lifecycle table or one of its guards refuses the move."""

    code = "not_allowed"

    def __init__(self, message: str, *, run_id: Any = None, current_state: str | None = None,
                 target_state: str | None = None):
        super().__init__(message, run_id=run_id, current_state=current_state)
        self.target_state = target_state


class TransitionConflict(TransitionError):
    """The run changed underneath the caller (someone else moved it first)."""

    code = "conflict"


class LeaseLost(TransitionError):
    """The caller is not (or no longer) the executor holding this run: it must stop working."""

    code = "lease_lost"


class RunCanceled(LeaseLost):
    """The run was canceled while an executor worked on it: it must stop."""

    code = "canceled"


class QueueError(RunError):
    """A queue operation did not happen; nothing was written."""

    code = "queue_error"

    def __init__(self, message: str, *, queue: str | None = None):
        super().__init__(message)
        self.queue = queue


class QueueNotFound(QueueError):
    """No run was ever submitted to that queue, and it is not paused."""

    code = "not_found"


class QueueAlreadyPaused(QueueError):
    """The queue is paused already (someone else paused it first)."""

    code = "already_paused"


class QueueNotPaused(QueueError):
    """The queue is not paused (someone else resumed it first)."""

    code = "not_paused"
