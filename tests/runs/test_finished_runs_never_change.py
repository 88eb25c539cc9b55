"""A terminal run is immutable: no transition, no amend, no save, whoever asks."""

from __future__ import annotations

import pytest

from runs import services
from runs.exceptions import TransitionNotAllowed
from runs.states import RunState
from tests.runs.conftest import TERMINAL, audit, row


@pytest.mark.django_db
@pytest.mark.parametrize("state", TERMINAL, ids=str)
def test_a_finished_run_refuses_every_move(make_run, state):
    run = make_run(state)
    before = row(run.pk)
    for target in RunState:
        with pytest.raises(TransitionNotAllowed, match="a finished run never changes"):
            run.transition_to(target, reason="try")
    assert row(run.pk) == before and audit(run.pk) == []


@pytest.mark.django_db
@pytest.mark.parametrize("state", TERMINAL, ids=str)
def test_a_finished_run_refuses_edits_through_amend_save_and_services(make_run, state):
    run = make_run(state)
    before = row(run.pk)
    with pytest.raises(TransitionNotAllowed):
        run.amend(progress=50)
    run.name = "renamed"
    with pytest.raises(TransitionNotAllowed):
        run.save()
    for verb in (lambda: services.cancel(run.pk, actor="op"),
                 lambda: services.suspend(run.pk, actor="op", reason="x"),
                 lambda: services.resume(run.pk, actor="op"),
                 lambda: services.retry_now(run.pk, actor="op"),
                 lambda: services.replenish(run.pk, actor="op", budget={"tokens": 5})):
        with pytest.raises(TransitionNotAllowed):
            verb()
    assert row(run.pk) == before and audit(run.pk) == []
