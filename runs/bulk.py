"""Acting on many runs at once: preview a filter, freeze its eligible ids, act on exactly those.

Each run goes through the operator action registry (`runs.actions` → `runs.services`), one
short transaction per run, so a bulk action never holds one giant transaction and every run
gets its own audit row and announcement. Outcomes are recorded chunk by chunk.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from runs.conf import runboard_setting

from .actions import ACTIONS, OperatorAction
from .bulk_models import BulkOperation
from .exceptions import InvalidInput, RunError, RunNotFound
from .listing import RunFilter, bounded_count, filtered_runs
from .models import Run
from .states import RunState

DEFAULT_CAP = 10_000
CHUNK_SIZE = 200
# A running operation with no chunk recorded for this long lost its request: it may continue.
STALLED_AFTER = timedelta(minutes=2)
BULK_ACTIONS = ("cancel", "suspend", "resume", "retry", "rerun")

TOO_MANY = ("{count} runs are eligible to {action}; the limit for one bulk action is {cap:,}. "
            "Narrow the filter (state, queue, name) and try again.")
NOTHING_ELIGIBLE = "No run matching this filter can be {past}."


class NotPermitted(RunError):
    """The user lacks the permission the action needs."""

    code = "forbidden"


class TooManyRuns(RunError):
    """More runs are eligible than one bulk action may touch."""

    code = "too_many"


class AlreadyStarted(RunError):
    """This bulk operation was already confirmed (it never acts twice)."""

    code = "already_started"


def bulk_cap() -> int:
    """The most runs one bulk action touches (`RUNBOARD["BULK_ACTION_CAP"]`, default 10,000)."""
    return int(runboard_setting("BULK_ACTION_CAP", DEFAULT_CAP))


def bulk_action(name: str) -> OperatorAction:
    """The registry entry for a bulk-capable action, or `InvalidInput`."""
    if name not in BULK_ACTIONS or name not in ACTIONS:
        raise InvalidInput(f"{name!r} is not a bulk action; choose one of "
                           f"{', '.join(BULK_ACTIONS)}")
    return ACTIONS[name]


def ensure_permitted(user: Any, action: OperatorAction) -> None:
    """Refuse a user without the action's permission (the same check as for one run)."""
    if not (getattr(user, "is_authenticated", False) and user.has_perm(action.permission)):
        raise NotPermitted(f"you do not have permission to {action.name} runs "
                           f"({action.permission})")


def skip_reason(action: OperatorAction, state: RunState | str) -> str:
    """Why a run in `state` is skipped: "already completed", "cannot suspend a ready run"."""
    state = RunState(state)
    if state.is_terminal and action.name != "rerun":
        return f"already {state.value}"
    return f"cannot {action.name} a {state.label.lower()} run"


def preview(*, user: Any, action_name: str, runs_filter: RunFilter, reason: str = "",
            run_ids: Iterable[str] | None = None) -> BulkOperation:
    """Freeze the ids of every run the filter matches that the action applies to now.

    Bounded: one LIMIT-ed read of eligible ids (cap + 1) and one LIMIT-ed count per ineligible
    state. Raises `TooManyRuns` above the cap, `NotPermitted` without the permission.
    """
    action = bulk_action(action_name)
    ensure_permitted(user, action)
    if runs_filter.errors:  # an unreadable filter matches nothing; never act on "all runs"
        raise InvalidInput(" ".join(runs_filter.errors))
    cap = bulk_cap()
    matching = filtered_runs(runs_filter)
    if run_ids is not None:  # rows ticked in the list: those, and only if they still match
        selected = _parse_ids(run_ids)
        if not selected:
            raise InvalidInput("No row is selected: tick the runs to act on.")
        if len(selected) > cap:
            raise TooManyRuns(TOO_MANY.format(count=f"{len(selected):,}", action=action.name,
                                              cap=cap))
        matching = matching.filter(pk__in=selected)
    eligible_states = [s.value for s in RunState if action.applies(s)]
    ids = list(
        matching.filter(state__in=eligible_states)
        .order_by("-state_changed_at", "-id").values_list("pk", flat=True)[: cap + 1]
    )
    if len(ids) > cap:
        raise TooManyRuns(TOO_MANY.format(count=f"More than {cap:,}", action=action.name,
                                          cap=cap))
    skipped: list[list[str]] = []
    states = [runs_filter.state] if runs_filter.state else [s.value for s in RunState]
    for state in states:
        if state in eligible_states:
            continue
        count = bounded_count(matching.filter(state=state), cap=cap)
        if count.value:
            skipped.append([skip_reason(action, state), str(count)])
    return BulkOperation.objects.create(
        user=user, action=action.name, filter=runs_filter.as_query(), reason=reason[:2000],
        run_ids=[str(pk) for pk in ids], matched=len(ids), skipped=skipped,
    )


def _parse_ids(run_ids: Iterable[str]) -> list[uuid.UUID]:
    try:
        return list({uuid.UUID(str(run_id)) for run_id in run_ids})
    except ValueError:
        raise InvalidInput("a selected row is not a run id") from None


def act_on_one(action: OperatorAction, run_id: Any, *, actor: str, reason: str = "") -> str:
    """Perform the action on one run; return its outcome ("canceled", "skipped: …")."""
    try:
        action.perform(run_id, actor=actor, reason=reason)
    except RunNotFound:
        return "skipped: no longer exists"
    except RunError as error:
        state = error.current_state or Run.objects.filter(pk=run_id).values_list(
            "state", flat=True).first()
        if state in RunState.values and not action.applies(RunState(state)):
            return f"skipped: {skip_reason(action, state)}"
        return f"failed: {error.message}"
    return action.past_tense


def act_on_ids(action: OperatorAction, run_ids: Iterable[Any], *, actor: str,
               reason: str = "") -> dict[str, str]:
    """Outcome per run id, acting on each in its own short transaction."""
    return {str(run_id): act_on_one(action, run_id, actor=actor, reason=reason)
            for run_id in run_ids}


def execute(operation: BulkOperation, *, user: Any,
            chunk_size: int = CHUNK_SIZE) -> BulkOperation:
    """Act on exactly the frozen ids of a previewed operation, chunk by chunk.

    The previewed → running move is a compare-and-set, so a double submit never acts twice.
    Outcomes are saved after every chunk: if the request dies midway, what happened so far is
    on record, and after STALLED_AFTER without progress its owner may continue it — on the
    ids without an outcome only.
    """
    action = bulk_action(operation.action)
    ensure_permitted(user, action)
    if operation.user_id != user.pk:
        raise NotPermitted("only the person who previewed a bulk action can confirm it")
    now = timezone.now()
    # Claim it: a fresh preview, or one whose confirming request died (no chunk for a while).
    startable = Q(status=BulkOperation.Status.PREVIEWED) | Q(
        status=BulkOperation.Status.RUNNING, progressed_at__lt=now - STALLED_AFTER)
    started = BulkOperation.objects.filter(startable, pk=operation.pk).update(
        status=BulkOperation.Status.RUNNING, progressed_at=now)
    if started != 1:
        raise AlreadyStarted(f"bulk operation {operation.pk} was already confirmed")
    operation.refresh_from_db()
    actor = user.get_username()
    outcomes: dict[str, str] = dict(operation.outcomes)  # a continued operation keeps its own
    remaining = [run_id for run_id in operation.run_ids if run_id not in outcomes]
    for start in range(0, len(remaining), chunk_size):
        chunk = remaining[start:start + chunk_size]
        outcomes.update(act_on_ids(action, chunk, actor=actor, reason=operation.reason))
        BulkOperation.objects.filter(pk=operation.pk).update(outcomes=outcomes,
                                                             progressed_at=timezone.now())
    BulkOperation.objects.filter(pk=operation.pk).update(
        outcomes=outcomes, status=BulkOperation.Status.DONE, finished_at=timezone.now())
    operation.refresh_from_db()
    return operation


def is_stalled(operation: BulkOperation) -> bool:
    """Whether a running operation lost its request and may be continued."""
    return (operation.status == BulkOperation.Status.RUNNING
            and operation.progressed_at is not None
            and operation.progressed_at < timezone.now() - STALLED_AFTER)


def summarize(outcomes: Mapping[str, str], *, skipped: Iterable[list[str]] = ()) -> str:
    """"3,120 canceled; 14 skipped: already completed" — the outcome counts of a bulk action.

    `skipped` adds the runs left out at preview ([reason, count] pairs; "10,000+" possible).
    """
    counts = Counter(outcomes.values())
    # Most common first; on a tie what was done before what was skipped or failed.
    ordered = sorted(counts.items(), key=lambda item: (
        -item[1], item[0].startswith(("skipped", "failed")), item[0]))
    parts = [f"{count:,} {outcome}" for outcome, count in ordered]
    parts += [f"{count} skipped: {why}" for why, count in skipped]
    return "; ".join(parts) or "nothing to do"


RESULTS_SHOWN = 200


def already_rerun(operation: BulkOperation) -> int:
    """How many of a rerun preview's runs have been rerun before (bounded by the frozen ids)."""
    if operation.action != "rerun" or not operation.run_ids:
        return 0
    return (Run.objects.filter(rerun_of__in=operation.run_ids).order_by()
            .values("rerun_of").distinct().count())


def runs_made(operation: BulkOperation, *, limit: int = RESULTS_SHOWN) -> list[Run]:
    """The runs a confirmed rerun made (newest first, at most `limit`)."""
    if operation.action != "rerun" or operation.status == "previewed":
        return []
    return list(Run.objects.filter(rerun_of__in=operation.run_ids,
                                   created_at__gte=operation.created_at)
                .order_by("-created_at").only("id", "name", "state", "rerun_of")[:limit])
