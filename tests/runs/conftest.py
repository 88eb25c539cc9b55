"""Helpers for the lifecycle tests: what a run's row and audit trail look like right now."""

from __future__ import annotations

from typing import Any

import pytest
from django.forms.models import model_to_dict

from runs.models import Run, Transition
from runs.states import RunState, can_move


def row(run_id: Any) -> dict[str, Any]:
    """Every column of the run as the database holds it now."""
    run = Run.objects.get(pk=run_id)
    return {**model_to_dict(run), "version": run.version, "created_at": run.created_at}


def audit(run_id: Any) -> list[tuple[str, str]]:
    """The run's audit trail as (from_state, to_state) pairs, oldest first."""
    return list(Transition.objects.filter(run_id=run_id).order_by("id")
                .values_list("from_state", "to_state"))


def assert_audit_consistent(run: Run) -> None:
    """Every recorded move is allowed, each starts where the last ended, the last is `state`."""
    trail = audit(run.pk)
    previous = None
    for source, target in trail:
        if previous is not None:
            assert source == previous, trail
            assert can_move(source, target), trail
        previous = target
    if trail:
        assert previous == run.state, (trail, run.state)


@pytest.fixture
def hinted():
    """Count the in-process change-log hints given while the test runs."""
    from runs.changelog import hints

    given: list[int] = []
    stop = hints.listen_here(lambda: given.append(1))
    yield given
    stop()


def changes(run_id: Any) -> list[tuple[str, str, str, int]]:
    """The change-log rows of one run: (kind, from, to, version), in log order."""
    from runs.models import Change

    return list(Change.objects.filter(run_id=run_id).order_by("id")
                .values_list("kind", "from_state", "to_state", "version"))


NON_TERMINAL = [state for state in RunState if not state.is_terminal]
TERMINAL = [state for state in RunState if state.is_terminal]
