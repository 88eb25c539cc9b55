"""Every committed write to a run appends exactly one change-log row in its own transaction —
creation, each move, each update, an admin edit — and nothing for a write that rolled back;
readers are hinted after commit only, and a failing hint never breaks a committed write."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import transaction

from runs import services
from runs.changelog import hints
from runs.models import Change, Run
from runs.states import RunState
from tests.runs.conftest import changes


class Boom(Exception):
    """What the broken code raises."""


@pytest.mark.django_db
def test_nothing_is_logged_or_hinted_when_the_surrounding_transaction_rolls_back(
    make_run, hinted, django_capture_on_commit_callbacks
):
    run = make_run(RunState.READY)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(
        Boom
    ), transaction.atomic():
        run.transition_to(RunState.CANCELED, actor="alice")
        raise Boom
    assert callbacks == [] and hinted == []
    assert changes(run.pk) == [("created", "", "ready", 1)]
    assert Run.objects.get(pk=run.pk).state == RunState.READY


@pytest.mark.django_db
def test_a_move_writes_one_row_with_what_a_board_needs_and_hints_after_commit(
    make_run, now, hinted, django_capture_on_commit_callbacks
):
    run = make_run(RunState.READY, queue="mail", name="send-mail")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run.transition_to(RunState.LEASED, actor="exec-7", lease_owner="exec-7",
                          lease_expires_at=now + timedelta(seconds=30), now=now,
                          reason="leased")
        assert hinted == []  # nothing before commit
    assert len(callbacks) == 1 and len(hinted) == 1
    row = Change.objects.filter(run_id=run.pk).latest("id")
    assert (row.kind, row.from_state, row.to_state, row.version) == (
        "transition", "ready", "leased", 2)
    assert (row.queue, row.name, row.actor, row.reason, row.at) == (
        "mail", "send-mail", "exec-7", "leased", now)


@pytest.mark.django_db
def test_submit_moves_and_heartbeats_each_append_a_row_with_the_new_version(
        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.submit(name="etl", actor="api")
        services.lease(executor="e1")
        services.start(run.pk, executor="e1")
        services.heartbeat(run.pk, executor="e1", progress=30)
    assert changes(run.pk) == [
        ("created", "", "ready", 1), ("transition", "ready", "leased", 2),
        ("transition", "leased", "running", 3), ("update", "running", "running", 4)]
    created = Change.objects.filter(run_id=run.pk).earliest("id")
    assert (created.actor, created.reason) == ("api", "submitted")


@pytest.mark.django_db
def test_an_edit_through_save_bumps_the_version_and_is_logged(make_run):
    run = make_run(RunState.READY, priority=1)
    run.priority = 9
    run.save()
    stored = Run.objects.get(pk=run.pk)
    assert (stored.priority, stored.version, run.version) == (9, 2, 2)
    assert changes(run.pk)[-1] == ("update", "ready", "ready", 2)


@pytest.mark.django_db
def test_a_lost_compare_and_set_writes_no_row(make_run):
    run = make_run(RunState.READY)
    stale = Run.objects.get(pk=run.pk)
    services.cancel(run.pk, actor="alice")
    with pytest.raises(Exception, match="changed underneath"):
        stale.transition_to(RunState.CANCELED, actor="bob")
    assert changes(run.pk) == [("created", "", "ready", 1),
                               ("transition", "ready", "canceled", 2)]


@pytest.mark.django_db(transaction=True)
def test_a_failing_hint_is_logged_and_does_not_break_the_committed_move(
    make_run, hinted, caplog
):
    def broken() -> None:
        raise Boom("listener bug")

    stop = hints.listen_here(broken)
    try:
        run = make_run(RunState.READY)
        with caplog.at_level(logging.ERROR, logger="runs.changelog.hints"):
            canceled = services.cancel(run.pk, actor="alice", reason="duplicate")
    finally:
        stop()

    assert canceled.state == RunState.CANCELED
    assert Run.objects.get(pk=run.pk).state == RunState.CANCELED
    assert len(hinted) == 2  # the other listener still heard both commits (create, cancel)
    assert any("hint failed" in r.getMessage() and r.exc_info for r in caplog.records)
