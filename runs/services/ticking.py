"""The clock's pass: every time-driven move, in bounded batches of compare-and-set moves."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from django.db.models import F
from django.utils import timezone

from ..exceptions import TransitionError
from ..lifecycle import SuspendedBy, exhausted_budget
from ..models import Run
from ..states import RunState
from .executors import fail_attempt

CLOCK_ACTOR = "clock"
# How many runs one clock step moves per tick; the clock ticks again at once when a step is full.
TICK_BATCH = 500


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
            lambda run: fail_attempt(
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
