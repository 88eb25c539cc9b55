"""Operator actions: what a person may do to a run, which permission it needs, which service
does it. The board, the run page, bulk actions and the admin all read this one registry, and
whether an action applies to a state is derived from the lifecycle table, never restated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import services
from .models import Run
from .states import RunState, can_move


@dataclass(frozen=True)
class OperatorAction:
    """One thing an operator can do to a run."""

    name: str  # URL segment and API value: "cancel", "suspend", …
    label: str  # button text
    permission: str  # "runs.cancel_run"
    applies: Callable[[RunState], bool]  # is it allowed in this state (lifecycle table)?
    perform: Callable[..., Run]  # (run_id, *, actor, reason) -> Run acted on (rerun: the new run)
    past_tense: str  # "canceled", for outcome reports
    needs_reason: bool = False
    # Stops or throws away work: pages ask before doing it (with an optional reason) and
    # draw its button apart from the harmless ones.
    destructive: bool = False


def _cancel(run_id: Any, *, actor: str, reason: str = "") -> Run:
    return services.cancel(run_id, actor=actor, reason=reason or f"canceled by {actor}")


def _suspend(run_id: Any, *, actor: str, reason: str = "") -> Run:
    return services.suspend(run_id, actor=actor, reason=reason or f"suspended by {actor}")


def _resume(run_id: Any, *, actor: str, reason: str = "") -> Run:
    return services.resume(run_id, actor=actor)


def _retry(run_id: Any, *, actor: str, reason: str = "") -> Run:
    return services.retry_now(run_id, actor=actor)


def _rerun(run_id: Any, *, actor: str, reason: str = "") -> Run:
    return services.rerun(run_id, actor=actor)


ACTIONS: dict[str, OperatorAction] = {
    action.name: action
    for action in (
        OperatorAction(
            "cancel", "Cancel", "runs.cancel_run",
            lambda state: can_move(state, RunState.CANCELED), _cancel, "canceled",
            destructive=True,
        ),
        OperatorAction(
            "suspend", "Suspend", "runs.suspend_run",
            lambda state: can_move(state, RunState.SUSPENDED), _suspend, "suspended",
            destructive=True,
        ),
        OperatorAction(
            "resume", "Resume", "runs.resume_run",
            lambda state: state == RunState.SUSPENDED and can_move(state, RunState.READY),
            _resume, "resumed",
        ),
        OperatorAction(
            "retry", "Retry now", "runs.retry_run",
            lambda state: state == RunState.RETRY_WAIT and can_move(state, RunState.READY),
            _retry, "retried",
        ),
        OperatorAction(
            "rerun", "Rerun", "runs.rerun_run",
            lambda state: RunState(state).is_terminal, _rerun, "rerun",
        ),
    )
}


def actions_for_state(state: RunState | str) -> list[str]:
    """Names of the actions the lifecycle allows on a run in `state`, in display order."""
    state = RunState(state)
    return [name for name, action in ACTIONS.items() if action.applies(state)]


def permitted_actions(user: Any) -> list[str]:
    """Names of the actions `user` holds the permission for (superusers: all)."""
    if not getattr(user, "is_authenticated", False):
        return []
    return [name for name, action in ACTIONS.items() if user.has_perm(action.permission)]


# Per state, computed once: the board sends it to clients so that no JS restates the graph.
ACTIONS_BY_STATE: dict[str, list[str]] = {state.value: actions_for_state(state)
                                          for state in RunState}
