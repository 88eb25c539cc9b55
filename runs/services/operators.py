"""The operator verbs: suspend, resume, retry now, cancel, replenish — whatever the run's state
is by now (they reload and decide again when executors moved it underneath)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..exceptions import InvalidInput, TransitionNotAllowed
from ..lifecycle import SuspendedBy, exhausted_budget
from ..models import Run
from ..states import RunState
from .lookups import retrying_conflicts, validate_budget


def suspend(run_id: Any, *, actor: str, reason: str) -> Run:
    """Preempt a running run; the clock never resumes an operator's suspension."""
    if not reason:
        raise InvalidInput("a suspension needs a reason")
    return retrying_conflicts(run_id, lambda run: run.transition_to(
        RunState.SUSPENDED, actor=actor, reason=reason, suspended_by=SuspendedBy.OPERATOR))


def resume(run_id: Any, *, actor: str) -> Run:
    """Put a suspended run back in line: suspended → ready."""
    def act(run: Run) -> Run:
        if run.state != RunState.SUSPENDED:
            raise TransitionNotAllowed(
                f"run {run.pk} is {run.state}; only a suspended run can be resumed",
                run_id=run.pk, current_state=run.state, target_state=RunState.READY,
            )
        return run.transition_to(RunState.READY, actor=actor, reason="resumed")
    return retrying_conflicts(run_id, act)


def retry_now(run_id: Any, *, actor: str) -> Run:
    """Skip the rest of a backoff: retry_wait → ready at once."""
    def act(run: Run) -> Run:
        if run.state != RunState.RETRY_WAIT:
            raise TransitionNotAllowed(
                f"run {run.pk} is {run.state}; only a run waiting to retry can retry now",
                run_id=run.pk, current_state=run.state, target_state=RunState.READY,
            )
        if run.attempts >= run.max_attempts:
            raise TransitionNotAllowed(
                f"run {run.pk} is {run.state}; no retry remains "
                f"(attempt {run.attempts}/{run.max_attempts})",
                run_id=run.pk, current_state=run.state, target_state=RunState.READY,
            )
        with transaction.atomic():
            now = timezone.now()
            run.amend(actor=actor, now=now, next_attempt_at=now)
            return run.transition_to(RunState.READY, actor=actor, now=now,
                                     reason="retry now (backoff skipped)")
    return retrying_conflicts(run_id, act)


def cancel(run_id: Any, *, actor: str, reason: str = "") -> Run:
    """Cancel a run in whatever non-terminal state it is in now."""
    return retrying_conflicts(
        run_id, lambda run: run.transition_to(RunState.CANCELED, actor=actor, reason=reason)
    )


def replenish(run_id: Any, *, actor: str, budget: Mapping[str, Any]) -> Run:
    """Raise budget limits; a budget-suspended run that now fits its budget resumes at once."""
    raised = validate_budget(budget, what="budget")
    if not raised:
        raise InvalidInput("replenish needs at least one dimension")

    def act(run: Run) -> Run:
        lowered = [d for d, limit in raised.items() if limit < run.budget.get(d, 0)]
        if lowered:
            raise InvalidInput(
                f"replenish only raises limits; {', '.join(lowered)} would go down",
                run_id=run.pk, current_state=run.state,
            )
        new_budget = {**run.budget, **raised}
        if (run.state == RunState.SUSPENDED and run.suspended_by == SuspendedBy.BUDGET
                and exhausted_budget(new_budget, run.consumed) is None):
            return run.transition_to(RunState.READY, actor=actor, budget=new_budget,
                                     reason="budget replenished")
        return run.amend(actor=actor, budget=new_budget)
    return retrying_conflicts(run_id, act)
