"""The whole 9 x 9 matrix: the 17 allowed moves succeed when their guard holds; the other 64 are
refused with `TransitionNotAllowed` and leave the row, the audit trail, the change log and the hints
untouched."""

from __future__ import annotations

from datetime import timedelta
from itertools import product
from typing import Any

import pytest

from runs.exceptions import TransitionNotAllowed
from runs.models import Run, Transition
from runs.states import ALLOWED_MOVES, RunState, can_move
from tests.runs.conftest import audit, changes, row

ALL_PAIRS = list(product(RunState, RunState))
ALLOWED = [(s, t) for s, t in ALL_PAIRS if can_move(s, t)]
REFUSED = [(s, t) for s, t in ALL_PAIRS if not can_move(s, t)]


def pair_id(pair: tuple[RunState, RunState]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def arguments_for(target: RunState, now: Any) -> dict[str, Any]:
    """What a caller passes with a move to `target` (the lease for leased, a reason always)."""
    arguments: dict[str, Any] = {"actor": "alice", "reason": "testing the table", "now": now}
    if target == RunState.LEASED:
        arguments.update(lease_owner="exec-9", lease_expires_at=now + timedelta(seconds=30))
    return arguments


def fields_for(source: RunState, target: RunState, now: Any) -> dict[str, Any]:
    """Run fields that make the guard of `source -> target` hold."""
    if (source, target) == (RunState.LEASED, RunState.READY):
        return {"lease_expires_at": now - timedelta(seconds=1)}
    if (source, target) == (RunState.RETRY_WAIT, RunState.FAILED):
        return {"attempts": 3, "max_attempts": 3}
    return {}


def test_the_table_allows_exactly_seventeen_moves_and_nothing_leaves_a_terminal_state():
    assert len(ALLOWED) == 17 and len(REFUSED) == 64
    assert all(not ALLOWED_MOVES[state] for state in RunState if state.is_terminal)
    assert all(not can_move(state, state) for state in RunState)
    assert [state.value for state in RunState if state.is_terminal] == [
        "completed", "failed", "canceled"]
    assert RunState.RUNNING.is_terminal is False and RunState.CANCELED.is_terminal is True


@pytest.mark.django_db
@pytest.mark.parametrize(("source", "target"), ALLOWED, ids=map(pair_id, ALLOWED))
def test_an_allowed_move_succeeds_when_its_guard_holds(make_run, now, source, target):
    run = make_run(source, **fields_for(source, target, now))
    version = run.version

    moved = run.transition_to(target, **arguments_for(target, now))

    assert moved.state == target
    stored = Run.objects.get(pk=run.pk)
    assert stored.state == target
    assert stored.version == version + 1
    assert stored.state_changed_at == now
    assert audit(run.pk) == [(source.value, target.value)]
    last = Transition.objects.get(run=run)
    assert (last.actor, last.reason, last.at) == ("alice", "testing the table", now)
    assert bool(stored.lease_owner) == (target in (RunState.LEASED, RunState.RUNNING))
    if target.is_terminal:
        assert stored.finished_at == now


@pytest.mark.django_db
@pytest.mark.parametrize(("source", "target"), REFUSED, ids=map(pair_id, REFUSED))
def test_a_move_outside_the_table_is_refused_and_writes_nothing(
    make_run, now, source, target, django_capture_on_commit_callbacks
):
    run = make_run(source)
    before = row(run.pk)

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(
        TransitionNotAllowed
    ) as refused:
        run.transition_to(target, **arguments_for(target, now))

    assert source.value in str(refused.value) and target.value in str(refused.value)
    assert refused.value.code == "not_allowed"
    assert refused.value.current_state == source
    assert row(run.pk) == before
    assert audit(run.pk) == []
    assert changes(run.pk) == [("created", "", source.value, 1)]
    assert callbacks == []
    assert run.state == source  # the instance is untouched too
