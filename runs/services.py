"""The verbs executors, the clock, the dashboard, the admin and the HTTP API share.

Each acts through `Run.transition_to` (or `Run.amend` for writes that move no state), so the
table, the guards, the audit row and the change-log row apply whoever calls. Executor verbs
check that the caller holds the lease; operator verbs reload and decide again when the run
moved underneath them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from .exceptions import (
    InvalidInput,
    LeaseLost,
    RunCanceled,
    RunNotFound,
    TransitionConflict,
    TransitionError,
    TransitionNotAllowed,
)
from .lifecycle import SuspendedBy, exhausted_budget
from .models import Run, Transition
from .queues import paused_queue_names
from .states import RunState

logger = logging.getLogger(__name__)

T = TypeVar("T")

CLOCK_ACTOR = "clock"
NAME_MAX = Run._meta.get_field("name").max_length
QUEUE_MAX = Run._meta.get_field("queue").max_length
# How many runs one clock step moves per tick; the clock ticks again at once when a step is full.
TICK_BATCH = 500
# Operator verbs retry this many times when executors keep moving the run underneath them.
CONFLICT_RETRIES = 5

BACKOFF_OPTIONS = {
    "backoff_base": "backoff_base_seconds",
    "backoff_factor": "backoff_factor",
    "backoff_cap": "backoff_cap_seconds",
    "backoff_jitter": "backoff_jitter",
}


# -- helpers ------------------------------------------------------------------------------------


def get_run(run_id: Any) -> Run:
    """The run with this id, or `RunNotFound` (also for ids that are not UUIDs)."""
    try:
        return Run.objects.get(pk=run_id)
    except (Run.DoesNotExist, ValidationError, ValueError, TypeError):
        raise RunNotFound(f"no run {run_id}", run_id=run_id) from None


def _retrying_conflicts(run_id: Any, act: Callable[[Run], T]) -> T:
    """Load the run and act on it; on a conflict reload and decide again."""
    for _ in range(CONFLICT_RETRIES - 1):
        try:
            return act(get_run(run_id))
        except TransitionConflict:
            continue
    return act(get_run(run_id))


def _validate_budget(budget: Mapping[str, Any] | None, *, what: str) -> dict[str, float]:
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


def _holding(run: Run, executor: str, *, verb: str, now: datetime) -> Run:
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


def _as_executor_error(error: TransitionConflict, run_id: Any, executor: str) -> LeaseLost:
    """A conflict on an executor verb means someone else moved the run: the lease is lost."""
    current = Run.objects.filter(pk=run_id).values_list("state", flat=True).first()
    cls = RunCanceled if current == RunState.CANCELED else LeaseLost
    return cls(f"run {run_id} is now {current}; executor {executor} must stop ({error})",
               run_id=run_id, current_state=current)


# -- submission ---------------------------------------------------------------------------------


@transaction.atomic
def submit(
    *,
    name: str,
    queue: str = "default",
    payload: Any = None,
    priority: int = 0,
    scheduled_at: datetime | None = None,
    max_attempts: int = 3,
    budget: Mapping[str, Any] | None = None,
    **options: Any,
) -> Run:
    """Create a run: `scheduled` if `scheduled_at` is in the future, `ready` otherwise."""
    unknown = set(options) - set(BACKOFF_OPTIONS) - {"actor", "rerun_of", "now"}
    if unknown:
        raise InvalidInput(f"submit() does not take {', '.join(sorted(unknown))}")
    _validate_submission(name=name, queue=queue, priority=priority, max_attempts=max_attempts,
                         scheduled_at=scheduled_at)
    now = options.pop("now", None) or timezone.now()
    actor = options.pop("actor", None) or ""
    backoff: dict[str, float] = {}
    for key, value in options.items():
        if key in BACKOFF_OPTIONS:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidInput(f"{key} must be a number ≥ 0, not {value!r}")
            backoff[BACKOFF_OPTIONS[key]] = float(value)
    if backoff.get("backoff_jitter", 0) > 1:
        raise InvalidInput("backoff_jitter is a fraction of the delay: at most 1")
    try:
        json.dumps(payload)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"payload must be JSON: {error}") from None
    due = scheduled_at or now
    rerun_of = options.get("rerun_of")
    reason = f"rerun of {rerun_of.pk}" if rerun_of else "submitted"
    run = Run(
        name=name,
        queue=queue,
        payload={} if payload is None else payload,
        priority=priority,
        scheduled_at=due,
        state=RunState.SCHEDULED if due > now else RunState.READY,
        max_attempts=max_attempts,
        budget=_validate_budget(budget, what="budget"),
        rerun_of=rerun_of,
        created_at=now,
        state_changed_at=now,
        **backoff,
    )
    run.save(force_insert=True, actor=actor, reason=reason)
    Transition.objects.create(run=run, from_state="", to_state=run.state, at=now, actor=actor,
                              reason=reason, attempt=0)
    return run


def _validate_submission(*, name: Any, queue: Any, priority: Any, max_attempts: Any,
                         scheduled_at: Any) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        raise InvalidInput(f"a run needs a name of 1 to {NAME_MAX} characters, not {name!r}")
    if not isinstance(queue, str) or not queue.strip() or len(queue) > QUEUE_MAX:
        raise InvalidInput(f"a queue needs a name of 1 to {QUEUE_MAX} characters, not {queue!r}")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidInput(f"priority must be an integer, not {priority!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise InvalidInput(f"max_attempts must be an integer of at least 1, not {max_attempts!r}")
    if scheduled_at is not None and (
        not isinstance(scheduled_at, datetime) or timezone.is_naive(scheduled_at)
    ):
        raise InvalidInput(f"scheduled_at must be a timezone-aware datetime, not {scheduled_at!r}")


# -- executor verbs -----------------------------------------------------------------------------


def lease(*, executor: str, queues: Iterable[str] | None = None, limit: int = 1,
          lease_seconds: int = 30) -> list[Run]:
    """Hand up to `limit` ready runs to `executor`: higher priority first, then oldest.

    On PostgreSQL the candidates are locked with SKIP LOCKED, so concurrent executors take
    different runs instead of queueing on the same rows; on SQLite writes are serialized
    (BEGIN IMMEDIATE) and the compare-and-set settles the rest. Never one run to two executors.
    """
    if not executor:
        raise InvalidInput("an executor needs a name to lease runs")
    if limit < 1 or lease_seconds < 1:
        raise InvalidInput("limit and lease_seconds must be at least 1")
    now = timezone.now()
    leased: list[Run] = []
    with transaction.atomic():
        # A paused queue's runs stay ready but are never handed out (runs/queues.py).
        candidates = Run.objects.filter(state=RunState.READY).exclude(
            queue__in=paused_queue_names())
        if queues:
            candidates = candidates.filter(queue__in=list(queues))
        candidates = candidates.order_by("-priority", "created_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        for run in candidates[:limit]:
            try:
                leased.append(run.transition_to(
                    RunState.LEASED, actor=executor, now=now,
                    lease_owner=executor, lease_seconds=lease_seconds,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                ))
            except TransitionError:
                continue  # another executor took it first
    return leased


def start(run_id: Any, *, executor: str) -> Run:
    """The lease holder starts working: leased → running, one attempt counted."""
    now = timezone.now()
    run = _holding(get_run(run_id), executor, verb="start", now=now)
    if run.state != RunState.LEASED:
        raise TransitionNotAllowed(
            f"run {run.pk} is {run.state}; cannot start it (only a leased run starts)",
            run_id=run.pk, current_state=run.state, target_state=RunState.RUNNING,
        )
    try:
        return run.transition_to(
            RunState.RUNNING, actor=executor, now=now,
            lease_expires_at=now + timedelta(seconds=run.lease_seconds),
        )
    except TransitionConflict as error:
        raise _as_executor_error(error, run_id, executor) from error


def heartbeat(run_id: Any, *, executor: str, progress: int | None = None,
              consumed: Mapping[str, Any] | None = None) -> Run:
    """Extend the lease, record progress and consumption; suspend the run when its budget runs out.

    Returns the run: if its state is no longer `running`, the executor must stop. A canceled
    run raises `RunCanceled`; a lost lease `LeaseLost`.
    """
    now = timezone.now()
    run = _holding(get_run(run_id), executor, verb="heartbeat", now=now)
    if run.state != RunState.RUNNING:
        raise TransitionNotAllowed(
            f"run {run.pk} is {run.state}; heartbeats are for running runs (start it first)",
            run_id=run.pk, current_state=run.state,
        )
    if progress is not None and (isinstance(progress, bool) or not 0 <= progress <= 100):
        raise InvalidInput(f"progress must be between 0 and 100, not {progress!r}")
    added = _validate_budget(consumed, what="consumed")
    total = dict(run.consumed)
    for dimension, amount in added.items():
        total[dimension] = total.get(dimension, 0) + amount
    changes: dict[str, Any] = {
        "heartbeat_at": now,
        "lease_expires_at": now + timedelta(seconds=run.lease_seconds),
        "consumed": total,
    }
    if progress is not None:
        changes["progress"] = progress
    try:
        exhausted = exhausted_budget(run.budget, total)
        if exhausted:
            changes.pop("lease_expires_at")
            return run.transition_to(
                RunState.SUSPENDED, actor=executor, now=now,
                reason=f"budget exhausted: {exhausted}", suspended_by=SuspendedBy.BUDGET,
                **changes,
            )
        return run.amend(actor=executor, now=now, **changes)
    except TransitionConflict as error:
        raise _as_executor_error(error, run_id, executor) from error


def complete(run_id: Any, *, executor: str, result: Any = None) -> Run:
    """The attempt succeeded: running → completed with its result."""
    now = timezone.now()
    run = _holding(get_run(run_id), executor, verb="complete", now=now)
    try:
        return run.transition_to(RunState.COMPLETED, actor=executor, now=now, result=result)
    except TransitionConflict as error:
        raise _as_executor_error(error, run_id, executor) from error


def fail(run_id: Any, *, executor: str, error: str, retryable: bool = True) -> Run:
    """The attempt failed: retry_wait (with backoff) while attempts remain, else failed."""
    now = timezone.now()
    run = _holding(get_run(run_id), executor, verb="fail", now=now)
    try:
        return _fail_attempt(run, error=str(error), retryable=retryable, actor=executor, now=now)
    except TransitionConflict as conflict:
        raise _as_executor_error(conflict, run_id, executor) from conflict


def _fail_attempt(run: Run, *, error: str, retryable: bool, actor: str, now: datetime) -> Run:
    if retryable and run.attempts < run.max_attempts:
        return run.transition_to(RunState.RETRY_WAIT, actor=actor, now=now, last_error=error,
                                 reason=error.splitlines()[0][:200] if error else "")
    why = "not retryable" if not retryable else f"attempt {run.attempts}/{run.max_attempts}"
    return run.transition_to(RunState.FAILED, actor=actor, now=now, last_error=error,
                             reason=f"{why}: {error.splitlines()[0][:200] if error else ''}")


# -- operator verbs -----------------------------------------------------------------------------


def suspend(run_id: Any, *, actor: str, reason: str) -> Run:
    """Preempt a running run; the clock never resumes an operator's suspension."""
    if not reason:
        raise InvalidInput("a suspension needs a reason")
    return _retrying_conflicts(run_id, lambda run: run.transition_to(
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
    return _retrying_conflicts(run_id, act)


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
    return _retrying_conflicts(run_id, act)


def cancel(run_id: Any, *, actor: str, reason: str = "") -> Run:
    """Cancel a run in whatever non-terminal state it is in now."""
    return _retrying_conflicts(
        run_id, lambda run: run.transition_to(RunState.CANCELED, actor=actor, reason=reason)
    )


@transaction.atomic
def rerun(run_id: Any, *, actor: str) -> Run:
    """A finished run is never reopened: make a new run linked to it (same work and budget)."""
    old = get_run(run_id)
    if not old.run_state.is_terminal:
        raise TransitionNotAllowed(
            f"run {old.pk} is {old.state}; only a finished run can be rerun",
            run_id=old.pk, current_state=old.state,
        )
    return submit(
        name=old.name, queue=old.queue, payload=old.payload, priority=old.priority,
        max_attempts=old.max_attempts, budget=old.budget, actor=actor, rerun_of=old,
        backoff_base=old.backoff_base_seconds, backoff_factor=old.backoff_factor,
        backoff_cap=old.backoff_cap_seconds, backoff_jitter=old.backoff_jitter,
    )


def replenish(run_id: Any, *, actor: str, budget: Mapping[str, Any]) -> Run:
    """Raise budget limits; a budget-suspended run that now fits its budget resumes at once."""
    raised = _validate_budget(budget, what="budget")
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
    return _retrying_conflicts(run_id, act)


# -- the clock ----------------------------------------------------------------------------------


def tick(*, now: datetime | None = None) -> Mapping[str, int]:
    """One pass of the clock; returns how many runs each step moved.

    Every step is a bounded batch of compare-and-set moves, so several clocks may tick at once:
    a run another clock moved first is a conflict, skipped.
    """
    now = now or timezone.now()
    runs = Run.objects
    steps: dict[str, tuple[Any, Callable[[Run], Run]]] = {
        "promoted": (
            runs.filter(state=RunState.SCHEDULED, scheduled_at__lte=now).order_by("scheduled_at"),
            lambda run: run.transition_to(RunState.READY, actor=CLOCK_ACTOR, now=now,
                                          reason="scheduled time reached"),
        ),
        "leases_expired": (
            runs.filter(state=RunState.LEASED, lease_expires_at__lte=now)
            .order_by("lease_expires_at"),
            lambda run: run.transition_to(
                RunState.READY, actor=CLOCK_ACTOR, now=now,
                reason=f"lease of {run.lease_owner} expired before it started"),
        ),
        "attempts_lapsed": (
            runs.filter(state=RunState.RUNNING, lease_expires_at__lte=now)
            .order_by("lease_expires_at"),
            lambda run: _fail_attempt(
                run, retryable=True, actor=CLOCK_ACTOR, now=now,
                error=f"lease expired: executor {run.lease_owner} stopped heartbeating"),
        ),
        # Normally impossible (a run only waits to retry while attempts remain), but
        # max_attempts can be lowered by hand: such a run fails now rather than at its backoff.
        "retries_exhausted": (
            runs.filter(state=RunState.RETRY_WAIT, attempts__gte=F("max_attempts"))
            .order_by("next_attempt_at"),
            lambda run: _end_backoff(run, now=now),
        ),
        "retries_due": (
            runs.filter(state=RunState.RETRY_WAIT, next_attempt_at__lte=now)
            .order_by("next_attempt_at"),
            lambda run: _end_backoff(run, now=now),
        ),
        # Never an operator's suspension: only the budget's, and only once it allows again.
        "budgets_resumed": (
            runs.filter(state=RunState.SUSPENDED, suspended_by=SuspendedBy.BUDGET)
            .within_budget().order_by("state_changed_at"),
            lambda run: _resume_if_budget_allows(run, now=now),
        ),
    }
    moved: dict[str, int] = {}
    for step, (due, act) in steps.items():
        count = 0
        for run in due[:TICK_BATCH]:
            try:
                if act(run) is not None:
                    count += 1
            except TransitionError:
                continue  # another clock or an operator moved it first
        moved[step] = count
    return moved


def _end_backoff(run: Run, *, now: datetime) -> Run:
    if run.attempts >= run.max_attempts:
        return run.transition_to(RunState.FAILED, actor=CLOCK_ACTOR, now=now,
                                 reason=f"no retry remains (attempt {run.attempts}/"
                                        f"{run.max_attempts})")
    return run.transition_to(RunState.READY, actor=CLOCK_ACTOR, now=now, reason="backoff ended")


def _resume_if_budget_allows(run: Run, *, now: datetime) -> Run | None:
    if exhausted_budget(run.budget, run.consumed) is not None:
        return None
    return run.transition_to(RunState.READY, actor=CLOCK_ACTOR, now=now,
                             reason="budget allows it again")
