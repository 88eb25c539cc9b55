"""Submitting runs, and rerunning a finished one as a new run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..exceptions import InvalidInput, TransitionNotAllowed
from ..models import Run
from ..states import RunState
from .lookups import get_run, validate_budget

NAME_MAX = Run._meta.get_field("name").max_length
QUEUE_MAX = Run._meta.get_field("queue").max_length

BACKOFF_OPTIONS = {
    "backoff_base": "backoff_base_seconds",
    "backoff_factor": "backoff_factor",
    "backoff_cap": "backoff_cap_seconds",
    "backoff_jitter": "backoff_jitter",
}


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
        budget=validate_budget(budget, what="budget"),
        rerun_of=rerun_of,
        created_at=now,
        state_changed_at=now,
        **backoff,
    )
    run.insert_audited(actor=actor, reason=reason)
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
