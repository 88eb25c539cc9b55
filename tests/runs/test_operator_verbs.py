"""Operator verbs: cancel from any unfinished state, suspend/resume, retry now, rerun."""

from __future__ import annotations

import pytest

from runs import services
from runs.exceptions import InvalidInput, TransitionNotAllowed
from runs.models import Run
from runs.states import RunState
from tests.runs.conftest import NON_TERMINAL, TERMINAL, audit


@pytest.mark.django_db
@pytest.mark.parametrize("state", NON_TERMINAL, ids=str)
def test_cancel_works_from_every_unfinished_state_and_records_who_and_why(make_run, state):
    run = make_run(state)
    canceled = services.cancel(run.pk, actor="alice", reason="duplicate")
    stored = Run.objects.get(pk=run.pk)
    assert canceled.state == stored.state == RunState.CANCELED
    assert (stored.lease_owner, stored.lease_expires_at, stored.next_attempt_at) == ("", None, None)
    assert stored.finished_at is not None
    last = stored.transitions.last()
    assert (last.from_state, last.actor, last.reason) == (state.value, "alice", "duplicate")


@pytest.mark.django_db
@pytest.mark.parametrize("state", TERMINAL, ids=str)
def test_cancel_refuses_a_finished_run(make_run, state):
    run = make_run(state)
    with pytest.raises(TransitionNotAllowed, match="finished"):
        services.cancel(run.pk, actor="alice")


@pytest.mark.django_db
def test_cancel_decides_again_when_the_run_moved_underneath(make_run, now):
    """An operator's cancel means "whatever state it is in now": a stale view is no obstacle."""
    run = make_run(RunState.READY)
    services.lease(executor="e1")
    assert services.cancel(run.pk, actor="alice").state == RunState.CANCELED
    assert audit(run.pk) == [("ready", "leased"), ("leased", "canceled")]


@pytest.mark.django_db
def test_suspend_preempts_only_a_running_run_and_needs_a_reason(make_run):
    running = make_run(RunState.RUNNING)
    with pytest.raises(InvalidInput):
        services.suspend(running.pk, actor="alice", reason="")
    suspended = services.suspend(running.pk, actor="alice", reason="maintenance")
    assert (suspended.state, suspended.suspend_reason, suspended.suspended_by) == (
        RunState.SUSPENDED, "maintenance", "operator")
    ready = make_run(RunState.READY)
    with pytest.raises(TransitionNotAllowed):
        services.suspend(ready.pk, actor="alice", reason="x")


@pytest.mark.django_db
@pytest.mark.parametrize("state", [s for s in RunState if s != RunState.SUSPENDED], ids=str)
def test_resume_is_only_for_suspended_runs(make_run, state):
    run = make_run(state)
    with pytest.raises(TransitionNotAllowed):
        services.resume(run.pk, actor="alice")


@pytest.mark.django_db
def test_retry_now_skips_the_rest_of_the_backoff(make_run, now):
    from datetime import timedelta

    run = make_run(RunState.RETRY_WAIT, next_attempt_at=now + timedelta(hours=1))
    ready = services.retry_now(run.pk, actor="alice")
    assert ready.state == RunState.READY and ready.next_attempt_at is None
    assert ready.transitions.last().reason == "retry now (backoff skipped)"
    assert [r.pk for r in services.lease(executor="e1")] == [run.pk]


@pytest.mark.django_db
def test_retry_now_refuses_runs_that_do_not_wait_or_have_no_retry_left(make_run):
    with pytest.raises(TransitionNotAllowed):
        services.retry_now(make_run(RunState.RUNNING).pk, actor="alice")
    exhausted = make_run(RunState.RETRY_WAIT, attempts=3, max_attempts=3)
    with pytest.raises(TransitionNotAllowed, match="no retry remains"):
        services.retry_now(exhausted.pk, actor="alice")


@pytest.mark.django_db
@pytest.mark.parametrize("state", TERMINAL, ids=str)
def test_rerun_makes_a_new_linked_run_and_leaves_the_old_one_alone(make_run, state):
    old = make_run(state, queue="mail", payload={"to": "a@b"}, priority=4, max_attempts=5,
                   budget={"tokens": 10}, consumed={"tokens": 10})
    before = Run.objects.get(pk=old.pk).version
    new = services.rerun(old.pk, actor="alice")
    assert new.pk != old.pk and new.rerun_of_id == old.pk
    assert new.state == RunState.READY and new.attempts == 0 and new.consumed == {}
    assert (new.name, new.queue, new.payload, new.priority, new.max_attempts, new.budget) == (
        old.name, "mail", {"to": "a@b"}, 4, 5, {"tokens": 10})
    assert new.transitions.get().reason == f"rerun of {old.pk}"
    assert Run.objects.get(pk=old.pk).version == before
    assert list(Run.objects.get(pk=old.pk).reruns.all()) == [new]


@pytest.mark.django_db
@pytest.mark.parametrize("state", NON_TERMINAL, ids=str)
def test_rerun_refuses_an_unfinished_run(make_run, state):
    run = make_run(state)
    with pytest.raises(TransitionNotAllowed, match="only a finished run"):
        services.rerun(run.pk, actor="alice")
    assert Run.objects.count() == 1
