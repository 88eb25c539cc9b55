"""The executor verbs: lease, start, heartbeat, complete, fail — each from the lease holder only."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db import router, transaction
from django.utils import timezone

from .. import reads
from ..exceptions import InvalidInput, TransitionConflict, TransitionError, TransitionNotAllowed
from ..lifecycle import SuspendedBy, exhausted_budget
from ..models import Move, Run
from ..queues import QueuePause
from ..states import RunState
from .lookups import as_executor_error, get_run, holding, validate_budget


def lease(*, executor: str, queues: Iterable[str] | None = None, limit: int = 1,
          lease_seconds: int = 30, start: bool = False) -> list[Run]:
    """Hand up to `limit` ready runs to `executor`: higher priority first, then oldest.

    With `start`, each is also started (one attempt counted) and comes back running: an
    executor that starts at once saves a second call, transaction and commit per run. Each run
    still goes ready → leased → running through the lifecycle's checks, with an audit row and
    a change-log row per move (the board sees the lease, then the start), written as one
    compare-and-set (`Run.transition_through`).

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
    alias = router.db_for_write(Run)
    # No savepoint inside a caller's transaction (a worker leases its next run in the one that
    # records its last outcome): a lost compare-and-set writes nothing, and any database error
    # dooms the caller's transaction anyway; a savepoint would cost two round trips.
    with transaction.atomic(using=alias, savepoint=False):
        # A paused queue's runs stay ready but are never handed out (runs/queues.py).
        candidates = reads.lease_candidates(Run, alias, state=RunState.READY,
                                            paused_model=QueuePause,
                                            queues=list(queues) if queues else None,
                                            limit=limit)
        moves = [Move(RunState.LEASED, changes={
            "lease_owner": executor, "lease_seconds": lease_seconds,
            "lease_expires_at": now + timedelta(seconds=lease_seconds)})]
        if start:
            moves.append(Move(RunState.RUNNING))  # the lease just taken runs from `now`
        for run in candidates:
            try:
                leased.append(run.transition_through(moves, actor=executor, now=now))
            except TransitionError:
                continue  # another executor took it first
    return leased


def start(run_id: Any, *, executor: str) -> Run:
    """The lease holder starts working: leased → running, one attempt counted."""
    now = timezone.now()
    run = holding(get_run(run_id), executor, verb="start", now=now)
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
        raise as_executor_error(error, run_id, executor) from error


def heartbeat(run_id: Any, *, executor: str, progress: int | None = None,
              consumed: Mapping[str, Any] | None = None) -> Run:
    """Extend the lease, record progress and consumption; suspend the run when its budget runs out.

    Returns the run: if its state is no longer `running`, the executor must stop. A canceled
    run raises `RunCanceled`; a lost lease `LeaseLost`.
    """
    now = timezone.now()
    run = holding(get_run(run_id), executor, verb="heartbeat", now=now)
    if run.state != RunState.RUNNING:
        raise TransitionNotAllowed(
            f"run {run.pk} is {run.state}; heartbeats are for running runs (start it first)",
            run_id=run.pk, current_state=run.state,
        )
    if progress is not None and (isinstance(progress, bool) or not 0 <= progress <= 100):
        raise InvalidInput(f"progress must be between 0 and 100, not {progress!r}")
    added = validate_budget(consumed, what="consumed")
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
        raise as_executor_error(error, run_id, executor) from error


def complete(run_id: Any, *, executor: str, result: Any = None, held: Run | None = None) -> Run:
    """The attempt succeeded: running → completed with its result.

    `held` is the run as the caller itself last wrote it (a worker's own attempt): the move is
    tried on it first, saving a read. If the run changed since, that try writes nothing and the
    move is decided again on the run as it is now, so the answer is the same either way.
    """
    def act(run: Run, now: datetime) -> Run:
        return run.transition_to(RunState.COMPLETED, actor=executor, now=now, result=result)

    return _as_holder(run_id, executor, "complete", act, held)


def fail(run_id: Any, *, executor: str, error: str, retryable: bool = True,
         held: Run | None = None) -> Run:
    """The attempt failed: retry_wait (with backoff) while attempts remain, else failed.
    `held` as for `complete`."""
    def act(run: Run, now: datetime) -> Run:
        return fail_attempt(run, error=str(error), retryable=retryable, actor=executor, now=now)

    return _as_holder(run_id, executor, "fail", act, held)


def _as_holder(run_id: Any, executor: str, verb: str, act: Callable[[Run, datetime], Run],
               held: Run | None) -> Run:
    now = timezone.now()
    if held is not None:
        try:
            return act(holding(held, executor, verb=verb, now=now), now)
        except TransitionError:
            pass  # `held` is out of date: decide on the run as it is now
    run = holding(get_run(run_id), executor, verb=verb, now=now)
    try:
        return act(run, now)
    except TransitionConflict as error:
        raise as_executor_error(error, run_id, executor) from error


def fail_attempt(run: Run, *, error: str, retryable: bool, actor: str, now: datetime) -> Run:
    if retryable and run.attempts < run.max_attempts:
        return run.transition_to(RunState.RETRY_WAIT, actor=actor, now=now, last_error=error,
                                 reason=error.splitlines()[0][:200] if error else "")
    why = "not retryable" if not retryable else f"attempt {run.attempts}/{run.max_attempts}"
    return run.transition_to(RunState.FAILED, actor=actor, now=now, last_error=error,
                             reason=f"{why}: {error.splitlines()[0][:200] if error else ''}")
