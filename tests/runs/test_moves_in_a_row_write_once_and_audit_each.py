"""`Run.transition_through`: several moves in a row are one compare-and-set, yet each move is
checked on the run the moves before it left, and gets its own audit row and change-log row."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runs.changelog.models import Change
from runs.exceptions import TransitionConflict, TransitionNotAllowed
from runs.models import Move, Run
from runs.states import RunState
from tests.runs.conftest import audit, row


def lease_then_start(now, owner="e1"):
    return [Move(RunState.LEASED, changes={"lease_owner": owner,
                                           "lease_expires_at": now + timedelta(minutes=1)}),
            Move(RunState.RUNNING)]


@pytest.mark.django_db
def test_lease_then_start_is_two_audited_moves_and_two_versions(make_run, now):
    run = make_run(RunState.READY)
    version = run.version
    run.transition_through(lease_then_start(now), actor="e1", now=now)
    assert (run.state, run.version, run.attempts) == (RunState.RUNNING, version + 2, 1)
    assert row(run.pk)["state"] == RunState.RUNNING and row(run.pk)["version"] == version + 2
    assert audit(run.pk)[-2:] == [("ready", "leased"), ("leased", "running")]
    logged = list(Change.objects.filter(run_id=run.pk, version__gt=version).order_by("id")
                  .values_list("version", "from_state", "to_state"))
    assert logged == [(version + 1, "ready", "leased"), (version + 2, "leased", "running")]


@pytest.mark.django_db
def test_a_refused_later_move_writes_nothing_and_leaves_the_instance_as_it_was(make_run, now):
    run = make_run(RunState.READY)
    before, trail = row(run.pk), audit(run.pk)
    state, version = run.state, run.version
    with pytest.raises(TransitionNotAllowed, match="leased"):
        # leased → completed is not in the table: checked on the run the first move left
        run.transition_through([lease_then_start(now)[0], Move(RunState.COMPLETED)], now=now)
    assert (run.state, run.version, run.lease_owner) == (state, version, "")
    assert row(run.pk) == before and audit(run.pk) == trail


@pytest.mark.django_db
def test_a_stale_instance_conflicts_and_writes_nothing(make_run, now):
    run = make_run(RunState.READY)
    stale = Run.objects.get(pk=run.pk)
    run.transition_through(lease_then_start(now), actor="e1", now=now)
    current, trail = row(run.pk), audit(run.pk)
    with pytest.raises(TransitionConflict):
        stale.transition_through(lease_then_start(now, owner="e2"), actor="e2", now=now)
    assert stale.state == RunState.READY
    assert row(run.pk) == current and audit(run.pk) == trail
