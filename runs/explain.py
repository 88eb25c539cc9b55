"""“Why isn't this run moving?” — the one-line answer the run page leads with.

A selector: it reads, never writes. Each state has one answer, built from the run's own fields
plus at most one bounded query (the queue position of a ready run, or who suspended or canceled
it when the caller did not pass the run's transitions in).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from .lifecycle import SuspendedBy, exhausted_budget
from .models import Run, Transition
from .states import RunState

# Counting ready runs ahead stops here: "1,000+" is as useful as an exact 412,337 and costs a
# bounded index range scan instead of one that grows with the queue.
QUEUE_POSITION_CAP = 1_000


@dataclass(frozen=True)
class Answer:
    """The one-line answer; `code` is stable for tests and styling, `text` is what people read."""

    code: str
    text: str


def explain(run: Run, *, now: datetime | None = None,
            transitions: Sequence[Transition] | None = None) -> Answer:
    """Say in one line why `run` is where it is and what it waits for.

    `transitions`, when given, is the run's timeline in order; it saves a query for the
    suspended and canceled answers, which name who did it.
    """
    now = now or timezone.now()
    state = RunState(run.state)
    if state == RunState.SCHEDULED:
        return _scheduled(run, now)
    if state == RunState.READY:
        return _ready(run)
    if state == RunState.LEASED:
        return _leased(run, now)
    if state == RunState.RUNNING:
        return _running(run, now)
    if state == RunState.RETRY_WAIT:
        return _retry_wait(run, now)
    if state == RunState.SUSPENDED:
        return _suspended(run, transitions)
    if state == RunState.COMPLETED:
        return Answer("completed", f"Finished: completed at {_when(run.finished_at)}.")
    if state == RunState.FAILED:
        error = first_line(run.last_error) or "no error recorded"
        return Answer("failed", f"Finished: failed: {error}")
    latest = latest_move_into(run, RunState.CANCELED, transitions)
    who = (latest.actor if latest else "") or "someone"
    reason = (latest.reason if latest else "") or "no reason given"
    return Answer("canceled", f"Finished: canceled by {who}: {reason}")


def ready_runs_ahead(run: Run, *, cap: int | None = None) -> int:
    """How many ready runs of the same queue an executor would lease before this one, up to
    `cap + 1` (more than `cap` means "cap+"); `cap` defaults to QUEUE_POSITION_CAP.

    Mirrors `services.lease`: higher priority first, then older. The count is LIMIT-ed inside a
    subquery, so it reads at most `cap + 1` entries of the partial lease index
    (queue, priority desc, created_at) WHERE state = 'ready'.
    """
    cap = QUEUE_POSITION_CAP if cap is None else cap
    ahead = Run.objects.filter(state=RunState.READY, queue=run.queue).filter(
        Q(priority__gt=run.priority)
        | Q(priority=run.priority, created_at__lt=run.created_at)
    )
    return ahead.order_by().values("pk")[: cap + 1].count()


def latest_move_into(run: Run, state: RunState,
                     transitions: Sequence[Transition] | None = None) -> Transition | None:
    """The most recent audit row that moved `run` into `state` (who did it, and why)."""
    if transitions is not None:
        return next((t for t in reversed(transitions) if t.to_state == state), None)
    return run.transitions.filter(to_state=state).order_by("-id").first()


def first_line(text: str) -> str:
    stripped = (text or "").strip()
    return stripped.splitlines()[0] if stripped else ""


def _scheduled(run: Run, now: datetime) -> Answer:
    if run.scheduled_at and run.scheduled_at > now:
        return Answer(
            "scheduled",
            f"Waiting for its scheduled time: {_when(run.scheduled_at)} "
            f"(in {_span(run.scheduled_at - now)}).",
        )
    return Answer(
        "scheduled_due",
        f"Due since {_when(run.scheduled_at)}; the clock promotes it to ready on its next tick.",
    )


def _ready(run: Run) -> Answer:
    ahead = ready_runs_ahead(run)
    if ahead == 0:
        return Answer(
            "ready_next",
            f"Next in line on queue {run.queue}: waiting for an executor to lease it.",
        )
    count = f"{QUEUE_POSITION_CAP:,}+" if ahead > QUEUE_POSITION_CAP else f"{ahead:,}"
    noun = "run" if ahead == 1 else "runs"
    return Answer("ready_queued", f"Queued behind {count} ready {noun} of queue {run.queue}.")


def _leased(run: Run, now: datetime) -> Answer:
    if run.lease_expires_at and run.lease_expires_at <= now:
        return Answer(
            "lease_expired",
            f"Lease held by {run.lease_owner} expired at {_when(run.lease_expires_at)} before "
            "it started; the clock returns it to ready.",
        )
    return Answer(
        "leased",
        f"Lease held by {run.lease_owner} until {_when(run.lease_expires_at)}; "
        "waiting for it to start.",
    )


def _running(run: Run, now: datetime) -> Answer:
    beat = run.heartbeat_at or run.started_at
    progress = f", {run.progress}% done" if run.progress is not None else ""
    text = f"Running on {run.lease_owner}, last heartbeat {_span(now - beat)} ago{progress}."
    if beat is None:
        text = f"Running on {run.lease_owner}, no heartbeat yet{progress}."
    if run.lease_expires_at and run.lease_expires_at <= now:
        return Answer(
            "running_lapsed",
            f"{text[:-1]}; its lease expired at {_when(run.lease_expires_at)}: the executor "
            "seems gone and the clock will count the attempt as failed.",
        )
    return Answer("running", text)


def _retry_wait(run: Run, now: datetime) -> Answer:
    error = first_line(run.last_error)
    tail = f" Last error: {error}" if error else ""
    if run.next_attempt_at and run.next_attempt_at > now:
        return Answer(
            "retry_wait",
            f"Backing off until {_when(run.next_attempt_at)}, retry in "
            f"{_span(run.next_attempt_at - now)} (attempt {run.attempts} of "
            f"{run.max_attempts}).{tail}",
        )
    return Answer(
        "retry_due",
        f"Backoff ended at {_when(run.next_attempt_at)} (attempt {run.attempts} of "
        f"{run.max_attempts}); the clock puts it back in line on its next tick.{tail}",
    )


def _suspended(run: Run, transitions: Sequence[Transition] | None) -> Answer:
    exhausted = exhausted_budget(run.budget or {}, run.consumed or {})
    if run.suspended_by == SuspendedBy.BUDGET and exhausted:
        return Answer(
            "budget_exhausted",
            f"Budget exhausted on {exhausted}; it resumes when the budget is raised.",
        )
    latest = latest_move_into(run, RunState.SUSPENDED, transitions)
    who = (latest.actor if latest else "") or run.get_suspended_by_display() or "someone"
    reason = run.suspend_reason or (latest.reason if latest else "") or "no reason given"
    if run.suspended_by == SuspendedBy.BUDGET:
        return Answer("budget_fits", f"Suspended by {who}: {reason}; the budget allows it "
                                     "again, so the clock resumes it on its next tick.")
    return Answer("suspended", f"Suspended by {who}: {reason}")


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


def _span(delta: timedelta) -> str:
    """A short human duration: "4 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
