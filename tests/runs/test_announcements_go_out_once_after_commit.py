"""`run_changed` goes out exactly once per committed write, never for a rolled-back one, and a
failing subscriber never breaks a write that already committed."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import transaction

from runs import services
from runs.events import run_changed
from runs.models import Run
from runs.states import RunState


class Boom(Exception):
    """What the broken subscriber raises."""


@pytest.mark.django_db
def test_no_announcement_when_the_surrounding_transaction_rolls_back(
    make_run, announced, django_capture_on_commit_callbacks
):
    run = make_run(RunState.READY)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(
        Boom
    ), transaction.atomic():
        run.transition_to(RunState.CANCELED, actor="alice")
        raise Boom
    assert callbacks == [] and announced == []
    assert Run.objects.get(pk=run.pk).state == RunState.READY


@pytest.mark.django_db
def test_exactly_one_announcement_after_commit_with_the_card_data(
    make_run, now, announced, django_capture_on_commit_callbacks
):
    run = make_run(RunState.READY, queue="mail", priority=3)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run.transition_to(RunState.LEASED, actor="exec-7", lease_owner="exec-7",
                          lease_expires_at=now + timedelta(seconds=30), now=now)
        assert announced == []  # nothing before commit
    assert len(callbacks) == 1 and len(announced) == 1
    (event,) = announced
    assert event["id"] == str(run.pk) and event["version"] == 2
    assert (event["from"], event["to"], event["kind"]) == ("ready", "leased", "transition")
    assert (event["actor"], event["at"]) == ("exec-7", now.isoformat())
    card = event["run"]
    assert (card["state"], card["queue"], card["priority"], card["lease_owner"]) == (
        "leased", "mail", 3, "exec-7")
    assert "payload" not in card and "result" not in card


@pytest.mark.django_db
def test_submit_and_heartbeats_announce_too(announced, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.submit(name="etl")
        services.lease(executor="e1")
        services.start(run.pk, executor="e1")
        services.heartbeat(run.pk, executor="e1", progress=30)
    assert [(e["kind"], e["from"], e["to"]) for e in announced] == [
        ("created", None, "ready"), ("transition", "ready", "leased"),
        ("transition", "leased", "running"), ("update", "running", "running")]
    assert [e["version"] for e in announced] == [1, 2, 3, 4]
    assert announced[-1]["run"]["progress"] == 30


@pytest.mark.django_db(transaction=True)
def test_a_failing_subscriber_is_logged_and_does_not_break_the_committed_transition(
    make_run, announced, caplog
):
    def broken(sender, event, **kwargs):
        raise Boom("subscriber bug")

    run_changed.connect(broken, weak=False)
    try:
        run = make_run(RunState.READY)
        with caplog.at_level(logging.ERROR, logger="runs.events"):
            canceled = services.cancel(run.pk, actor="alice", reason="duplicate")
    finally:
        run_changed.disconnect(broken)

    assert canceled.state == RunState.CANCELED
    assert Run.objects.get(pk=run.pk).state == RunState.CANCELED
    assert len(announced) == 1  # the other subscriber still got it
    assert any("run_changed subscriber" in r.getMessage() and r.exc_info for r in caplog.records)
