"""Every move bumps `version` by exactly one and writes one audit row; a stale instance gets a
`TransitionConflict` and writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runs.exceptions import TransitionConflict, TransitionError
from runs.models import Run, Transition
from runs.states import RunState
from tests.runs.conftest import audit, row


@pytest.mark.django_db
def test_a_run_through_its_whole_life_gains_one_version_and_one_row_per_move(make_run, now):
    run = make_run(RunState.SCHEDULED)
    path = [
        (RunState.READY, {}),
        (RunState.LEASED, {"lease_owner": "e1", "lease_expires_at": now + timedelta(minutes=1)}),
        (RunState.RUNNING, {}),
        (RunState.SUSPENDED, {"reason": "preempted"}),
        (RunState.READY, {}),
        (RunState.LEASED, {"lease_owner": "e2", "lease_expires_at": now + timedelta(minutes=1)}),
        (RunState.RUNNING, {}),
        (RunState.RETRY_WAIT, {}),
    ]
    for number, (target, arguments) in enumerate(path, start=1):
        run = run.transition_to(target, now=now, **arguments)
        assert Run.objects.get(pk=run.pk).version == 1 + number
        assert Transition.objects.filter(run=run).count() == number
    trail = Transition.objects.filter(run=run).order_by("id")
    assert [t.attempt for t in trail] == [0, 0, 1, 0, 0, 0, 1, 1]


@pytest.mark.django_db
def test_amend_bumps_the_version_without_an_audit_row(make_run):
    run = make_run(RunState.RUNNING)
    run.amend(progress=40)
    assert (Run.objects.get(pk=run.pk).version, Run.objects.get(pk=run.pk).progress) == (2, 40)
    assert audit(run.pk) == []


@pytest.mark.django_db
def test_a_stale_instance_gets_a_conflict_and_writes_nothing(make_run,
                                                             django_capture_on_commit_callbacks):
    stale = make_run(RunState.READY)
    Run.objects.get(pk=stale.pk).transition_to(RunState.CANCELED, actor="bob")
    before = row(stale.pk)

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(
        TransitionConflict
    ) as conflict:
        stale.transition_to(RunState.CANCELED, actor="alice")

    assert isinstance(conflict.value, TransitionError)
    assert conflict.value.code == "conflict"
    assert conflict.value.current_state == RunState.CANCELED
    assert "changed underneath" in str(conflict.value)
    assert row(stale.pk) == before
    assert audit(stale.pk) == [("ready", "canceled")]
    assert callbacks == []


@pytest.mark.django_db
def test_an_a_to_b_to_a_change_is_still_a_conflict(make_run, now):
    """Compare-and-set on the version, not only the state (django-fsm's concurrency hole)."""
    stale = make_run(RunState.READY)
    fresh = Run.objects.get(pk=stale.pk)
    fresh.transition_to(RunState.LEASED, lease_owner="e1",
                        lease_expires_at=now + timedelta(seconds=1), now=now)
    fresh.transition_to(RunState.READY, now=now + timedelta(seconds=1))
    with pytest.raises(TransitionConflict):
        stale.transition_to(RunState.CANCELED)
    assert Run.objects.get(pk=stale.pk).state == RunState.READY


@pytest.mark.django_db
def test_a_conflicting_amend_writes_nothing(make_run):
    stale = make_run(RunState.RUNNING)
    Run.objects.get(pk=stale.pk).amend(progress=10)
    with pytest.raises(TransitionConflict):
        stale.amend(progress=90)
    assert Run.objects.get(pk=stale.pk).progress == 10
