"""Guards and field effects of each move, on top of the table in `runs.states`.

`Run.transition_to` asks `plan_transition` what a move would write; it raises
`TransitionNotAllowed` when the table or a guard refuses, so nothing is written.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .exceptions import TransitionNotAllowed
from .states import LEASE_HOLDING_STATES, RunState, can_move

if TYPE_CHECKING:
    from .models import Run

# Fields a caller may pass as `**changes` alongside a move. `state`, `version`, `attempts` and
# the lifecycle timestamps are derived here and never taken from callers.
LEASE_FIELDS: frozenset[str] = frozenset({"lease_owner", "lease_expires_at"})
SUSPEND_FIELDS: frozenset[str] = frozenset({"suspend_reason", "suspended_by"})
CHANGEABLE_FIELDS: frozenset[str] = LEASE_FIELDS | SUSPEND_FIELDS | frozenset(
    {
        "lease_seconds",
        "heartbeat_at",
        "next_attempt_at",
        "last_error",
        "result",
        "progress",
        "consumed",
        "budget",
        "priority",
    }
)


def check_changes(changes: dict[str, Any], *, state: RunState, verb: str) -> None:
    """Refuse fields no caller may set, and fields that make no sense in `state`.

    A lease only exists in leased/running and a suspension reason only in suspended, so that
    "lease fields are set iff the run holds a lease" stays true whoever calls.
    """
    unknown = set(changes) - CHANGEABLE_FIELDS
    if unknown:
        raise TypeError(f"{verb}() cannot set {', '.join(sorted(unknown))}")
    if state not in LEASE_HOLDING_STATES and LEASE_FIELDS & set(changes):
        raise ValueError(f"{verb}(): a {state} run holds no lease")
    if state != RunState.SUSPENDED and SUSPEND_FIELDS & set(changes):
        raise ValueError(f"{verb}(): only a suspended run has a suspension reason")


class SuspendedBy:
    """Who preempted a suspended run; the clock only ever resumes the budget's suspensions."""

    BUDGET = "budget"
    OPERATOR = "operator"
    CHOICES = ((BUDGET, "Budget exhausted"), (OPERATOR, "Operator"))


def refuse(run: Run, target: RunState, why: str) -> TransitionNotAllowed:
    return TransitionNotAllowed(
        f"run {run.pk} is {run.state}; cannot move to {target}: {why}",
        run_id=run.pk,
        current_state=str(run.state),
        target_state=str(target),
    )


def backoff_delay(run: Run, attempt: int) -> timedelta:
    """Exponential backoff for the retry after `attempt` (1-based), capped, with jitter.

    Jitter only shortens the wait ("equal jitter" style), so the cap is never exceeded.
    """
    raw = run.backoff_base_seconds * run.backoff_factor ** max(attempt - 1, 0)
    capped = min(raw, run.backoff_cap_seconds)
    jittered = capped * (1 - run.backoff_jitter * random.random())
    return timedelta(seconds=max(jittered, 0.0))


def exhausted_budget(budget: dict[str, Any], consumed: dict[str, Any]) -> str | None:
    """The first dimension whose consumption reached its limit, as "tokens 512/500", or None."""
    for dimension, limit in sorted(budget.items()):
        used = consumed.get(dimension, 0)
        # Only numbers count (services validate them; a hand edit might not), as in
        # `RunQuerySet.within_budget`, so that the clock and this check always agree.
        if not (_is_number(limit) and _is_number(used)):
            continue
        if used >= limit:
            return f"{dimension} {_fmt(used)}/{_fmt(limit)}"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def plan_transition(
    run: Run,
    target: RunState,
    *,
    reason: str,
    now: datetime,
    changes: dict[str, Any],
) -> dict[str, Any]:
    """Check the move against the table and its guard; return every field the move writes.

    Raises `TransitionNotAllowed` and computes nothing further when the move is refused.
    """
    source = RunState(run.state)
    check_changes(changes, state=target, verb="transition_to")
    if source.is_terminal:
        raise refuse(run, target, "a finished run never changes")
    if not can_move(source, target):
        raise refuse(run, target, "the lifecycle does not allow it")

    # Callers' changes first; what the move itself derives (attempts, timestamps, clearing the
    # lease) is applied on top, so no caller can undo a move's effects.
    values: dict[str, Any] = dict(changes)
    move = (source, target)

    if move == (RunState.SCHEDULED, RunState.READY):
        if run.scheduled_at and run.scheduled_at > now:
            raise refuse(run, target, f"it is scheduled for {run.scheduled_at.isoformat()}")
    elif move == (RunState.READY, RunState.LEASED):
        owner, expires = changes.get("lease_owner"), changes.get("lease_expires_at")
        if not owner or expires is None or expires <= now:
            raise refuse(run, target, "a lease needs an owner and a future expiry")
    elif move == (RunState.LEASED, RunState.RUNNING):
        if run.lease_expires_at is None or run.lease_expires_at <= now:
            raise refuse(run, target, "the lease has expired")
        values.update(attempts=run.attempts + 1, started_at=now, heartbeat_at=now, progress=None)
    elif move == (RunState.LEASED, RunState.READY):
        if run.lease_expires_at is not None and run.lease_expires_at > now:
            raise refuse(run, target, "the lease is still held")
    elif move == (RunState.RUNNING, RunState.RETRY_WAIT):
        if run.attempts >= run.max_attempts:
            raise refuse(
                run, target, f"no retry remains (attempt {run.attempts}/{run.max_attempts})"
            )
        values["next_attempt_at"] = now + backoff_delay(run, run.attempts)
    elif move == (RunState.RUNNING, RunState.SUSPENDED):
        if not (reason or changes.get("suspend_reason")):
            raise refuse(run, target, "a suspension needs a reason")
        # A preempted attempt does not count toward max_attempts.
        values.update(
            attempts=max(run.attempts - 1, 0),
            suspend_reason=changes.get("suspend_reason") or reason,
            suspended_by=changes.get("suspended_by") or SuspendedBy.OPERATOR,
        )
    elif move == (RunState.RETRY_WAIT, RunState.READY):
        if run.next_attempt_at is not None and run.next_attempt_at > now:
            raise refuse(run, target, f"it backs off until {run.next_attempt_at.isoformat()}")
    elif move == (RunState.RETRY_WAIT, RunState.FAILED) and run.attempts < run.max_attempts:
        raise refuse(run, target, f"retries remain (attempt {run.attempts}/{run.max_attempts})")

    # Effects shared by every move into or out of a kind of state.
    if source in LEASE_HOLDING_STATES and target not in LEASE_HOLDING_STATES:
        values.update(lease_owner="", lease_expires_at=None)
    if source == RunState.SUSPENDED:
        values.update(suspend_reason="", suspended_by="")
    if target == RunState.READY:
        values["next_attempt_at"] = None
    if target.is_terminal:
        values.update(finished_at=now, next_attempt_at=None)

    values.update(state=target, version=run.version + 1, state_changed_at=now)
    return values
