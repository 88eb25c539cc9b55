"""The run page leads with one line saying why the run is (not) moving — one test per answer."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from runs import explain, services
from runs.models import Run
from runs.states import RunState
from tests.runpage.html import parse

pytestmark = pytest.mark.django_db


def answer_on_page(client, run: Run) -> tuple[str, str]:
    response = client.get(reverse("run-detail", args=[run.pk]))
    assert response.status_code == 200
    node = parse(response.content).find(id="run-answer")
    return node.attrs["data-code"], node.text


def test_a_scheduled_run_waits_for_its_scheduled_time(watcher_client, make_run, now):
    run = make_run(RunState.SCHEDULED, scheduled_at=now + timedelta(hours=2))
    code, text = answer_on_page(watcher_client, run)
    assert code == "scheduled"
    assert text.startswith("Waiting for its scheduled time:")
    assert "(in 1 h 59 min)" in text or "(in 2 h)" in text


def test_a_ready_run_is_queued_behind_the_ready_runs_leased_before_it(
        watcher_client, make_run, now):
    make_run(RunState.READY, priority=5, created_at=now)  # higher priority, newer: ahead
    make_run(RunState.READY, created_at=now - timedelta(minutes=5))  # same priority, older
    make_run(RunState.READY, created_at=now - timedelta(minutes=4))
    make_run(RunState.READY, priority=-1, created_at=now - timedelta(hours=1))  # lower: behind
    make_run(RunState.READY, queue="other", created_at=now - timedelta(hours=1))  # other queue
    make_run(RunState.RUNNING, created_at=now - timedelta(hours=1))  # not ready
    run = make_run(RunState.READY, created_at=now - timedelta(minutes=1))
    make_run(RunState.READY, created_at=now)  # newer: behind
    assert answer_on_page(watcher_client, run) == (
        "ready_queued", "Queued behind 3 ready runs of queue default.")


def test_the_queue_position_is_a_bounded_count(watcher_client, make_run, now, monkeypatch):
    monkeypatch.setattr(explain, "QUEUE_POSITION_CAP", 2)
    for minutes in range(5, 10):
        make_run(RunState.READY, created_at=now - timedelta(minutes=minutes))
    run = make_run(RunState.READY, created_at=now)
    assert explain.ready_runs_ahead(run) == 3  # stops at cap + 1
    assert answer_on_page(watcher_client, run)[1] == "Queued behind 2+ ready runs of queue default."


def test_the_first_ready_run_of_its_queue_waits_for_an_executor(watcher_client, make_run):
    run = make_run(RunState.READY, queue="emails")
    assert answer_on_page(watcher_client, run) == (
        "ready_next", "Next in line on queue emails: waiting for an executor to lease it.")


def test_a_leased_run_names_the_lease_holder_and_the_expiry(watcher_client):
    services.submit(name="etl")
    (run,) = services.lease(executor="exec-7", lease_seconds=60)
    code, text = answer_on_page(watcher_client, run)
    assert code == "leased"
    assert text.startswith("Lease held by exec-7 until ")


def test_a_running_run_says_when_it_last_heartbeat(watcher_client, make_run, now):
    run = make_run(RunState.RUNNING, heartbeat_at=now - timedelta(minutes=5), progress=40,
                   lease_owner="exec-2")
    assert answer_on_page(watcher_client, run) == (
        "running", "Running on exec-2, last heartbeat 5 min ago, 40% done.")


def test_a_running_run_whose_lease_lapsed_says_its_executor_seems_gone(
        watcher_client, make_run, now):
    run = make_run(RunState.RUNNING, heartbeat_at=now - timedelta(minutes=5),
                   lease_expires_at=now - timedelta(minutes=4))
    code, text = answer_on_page(watcher_client, run)
    assert code == "running_lapsed"
    assert "the executor seems gone" in text


def test_a_backing_off_run_says_until_when_and_which_attempt(watcher_client, make_run, now):
    run = make_run(RunState.RETRY_WAIT, attempts=2, max_attempts=5,
                   next_attempt_at=now + timedelta(minutes=3), last_error="timeout\ntrace")
    code, text = answer_on_page(watcher_client, run)
    assert code == "retry_wait"
    assert text.startswith("Backing off until ")
    assert re.search(r"UTC, retry in (2|3) min \(attempt 2 of 5\)\. Last error: timeout", text)


def test_a_run_suspended_by_its_budget_names_the_exhausted_dimension(watcher_client):
    run = services.submit(name="llm", budget={"cost_cents": 500, "tokens": 10_000})
    services.lease(executor="exec-1")
    services.start(run.pk, executor="exec-1")
    run = services.heartbeat(run.pk, executor="exec-1", consumed={"cost_cents": 512})
    assert run.state == RunState.SUSPENDED
    assert answer_on_page(watcher_client, run) == (
        "budget_exhausted",
        "Budget exhausted on cost_cents 512/500; it resumes when the budget is raised.")


def test_a_run_suspended_by_an_operator_names_who_and_why(watcher_client, make_run):
    run = make_run(RunState.RUNNING)
    services.suspend(run.pk, actor="alice", reason="database maintenance")
    assert answer_on_page(watcher_client, run) == (
        "suspended", "Suspended by alice: database maintenance")


def test_a_completed_run_is_finished(watcher_client, make_run):
    run = make_run(RunState.RUNNING)
    services.complete(run.pk, executor="exec-1", result={"rows": 3})
    code, text = answer_on_page(watcher_client, run)
    assert code == "completed"
    assert text.startswith("Finished: completed at ")


def test_a_failed_run_shows_the_first_line_of_its_error(watcher_client, make_run):
    run = make_run(RunState.RUNNING, max_attempts=1)
    services.fail(run.pk, executor="exec-1", error="KeyError: 'x'\nTraceback …")
    assert answer_on_page(watcher_client, run) == ("failed", "Finished: failed: KeyError: 'x'")


def test_a_canceled_run_names_who_canceled_it_and_why(watcher_client, make_run):
    run = make_run(RunState.READY)
    services.cancel(run.pk, actor="bob", reason="duplicate of 42")
    assert answer_on_page(watcher_client, run) == (
        "canceled", "Finished: canceled by bob: duplicate of 42")
