"""What the verbs share: finding a run, retrying an operator's move on a conflict, checking
a budget and that an executor holds the lease."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import router

from .. import reads
from ..exceptions import InvalidInput, LeaseLost, RunCanceled, RunNotFound, TransitionConflict
from ..models import Run
from ..states import RunState

T = TypeVar("T")

# Operator verbs retry this many times when executors keep moving the run underneath them.
CONFLICT_RETRIES = 5


def get_run(run_id: Any) -> Run:
    """The run with this id, or `RunNotFound` (also for ids that are not UUIDs)."""
    try:
        run = reads.by_pk(Run, router.db_for_read(Run), run_id)
    except (ValidationError, ValueError, TypeError):
        run = None
    if run is None:
        raise RunNotFound(f"no run {run_id}", run_id=run_id)
    return run


def retrying_conflicts(run_id: Any, act: Callable[[Run], T]) -> T:
    """Load the run and act on it; on a conflict reload and decide again."""
    for _ in range(CONFLICT_RETRIES - 1):
        try:
            return act(get_run(run_id))
        except TransitionConflict:
            continue
    return act(get_run(run_id))


def validate_budget(budget: Mapping[str, Any] | None, *, what: str) -> dict[str, float]:
    if budget is None:
        return {}
    if not isinstance(budget, Mapping):
        raise InvalidInput(f"{what} must map a dimension to a number")
    clean: dict[str, float] = {}
    for dimension, amount in budget.items():
        if not isinstance(dimension, str) or not dimension:
            raise InvalidInput(f"{what}: dimension names must be non-empty strings")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            raise InvalidInput(f"{what}: {dimension} must be a number ≥ 0, not {amount!r}")
        clean[dimension] = amount
    return clean


def holding(run: Run, executor: str, *, verb: str, now: datetime) -> Run:
    """Refuse an executor verb from anyone but the live lease holder."""
    if run.state == RunState.CANCELED:
        raise RunCanceled(
            f"run {run.pk} was canceled; executor {executor} must stop",
            run_id=run.pk, current_state=run.state,
        )
    if not run.holds_lease or run.lease_owner != executor:
        raise LeaseLost(
            f"run {run.pk} is {run.state}"
            + (f" and leased to {run.lease_owner}" if run.lease_owner else "")
            + f"; executor {executor} cannot {verb} it",
            run_id=run.pk, current_state=run.state,
        )
    if run.lease_expires_at is None or run.lease_expires_at <= now:
        raise LeaseLost(
            f"run {run.pk}: the lease of {executor} expired at {run.lease_expires_at}; "
            f"cannot {verb} it",
            run_id=run.pk, current_state=run.state,
        )
    return run


def as_executor_error(error: TransitionConflict, run_id: Any, executor: str) -> LeaseLost:
    """A conflict on an executor verb means someone else moved the run: the lease is lost."""
    current = Run.objects.filter(pk=run_id).values_list("state", flat=True).first()
    cls = RunCanceled if current == RunState.CANCELED else LeaseLost
    return cls(f"run {run_id} is now {current}; executor {executor} must stop ({error})",
               run_id=run_id, current_state=current)
