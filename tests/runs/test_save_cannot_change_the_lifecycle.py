"""`Run.save()` creates runs in any state but never changes the lifecycle of an existing one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runs.exceptions import TransitionNotAllowed
from runs.models import Run, Transition
from runs.states import RunState
from tests.runs.conftest import row


@pytest.mark.django_db
@pytest.mark.parametrize("state", list(RunState), ids=str)
def test_objects_create_works_in_any_state_with_every_other_field_defaulted(state):
    run = Run.objects.create(name="import", state=state)
    assert Run.objects.get(pk=run.pk).state == state
    assert run.version == 1


@pytest.mark.django_db
def test_save_refuses_a_state_change(make_run):
    run = make_run(RunState.READY)
    run.state = RunState.COMPLETED
    with pytest.raises(TransitionNotAllowed, match="save\\(\\) cannot change state"):
        run.save()
    assert Run.objects.get(pk=run.pk).state == RunState.READY
    assert not Transition.objects.filter(run=run).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [("version", 99), ("attempts", 2), ("lease_owner", "me"), ("consumed", {"tokens": 1}),
     ("next_attempt_at", None), ("result", {"ok": True})],
)
def test_save_refuses_edits_of_lifecycle_fields(make_run, field, value):
    run = make_run(RunState.RETRY_WAIT)
    before = row(run.pk)
    setattr(run, field, value)
    with pytest.raises(TransitionNotAllowed, match="lifecycle fields"):
        run.save()
    with pytest.raises(TransitionNotAllowed):
        Run.objects.get(pk=run.pk).save(update_fields=[field])
    assert row(run.pk) == before


@pytest.mark.django_db
def test_saving_a_stale_instance_edits_its_fields_but_never_rolls_the_lifecycle_back(make_run,
                                                                                     now):
    stale = make_run(RunState.READY)
    Run.objects.get(pk=stale.pk).transition_to(
        RunState.LEASED, lease_owner="e1", lease_expires_at=now + timedelta(seconds=30))

    stale.priority = 7
    stale.save()

    stored = Run.objects.get(pk=stale.pk)
    # The edit is a write of its own (version 3, logged for boards); the move stands.
    assert (stored.priority, stored.state, stored.lease_owner, stored.version) == (
        7, RunState.LEASED, "e1", 3)


@pytest.mark.django_db
def test_refresh_from_db_makes_the_fresh_state_the_baseline(make_run, now):
    run = make_run(RunState.READY)
    Run.objects.get(pk=run.pk).transition_to(RunState.CANCELED, reason="dup")
    run.refresh_from_db()
    assert run.state == RunState.CANCELED
    run.name = "x"
    with pytest.raises(TransitionNotAllowed, match="a finished run never changes"):
        run.save()
