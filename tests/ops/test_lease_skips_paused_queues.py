"""`services.lease` never hands out a run of a paused queue; resuming makes them leasable again.

These run in both passes of `make test`: on SQLite, and on PostgreSQL (where the lease takes
its candidates FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs import services
from runs.queues import pause_queue, resume_queue
from runs.states import RunState

pytestmark = pytest.mark.django_db


@pytest.fixture
def backlog():
    """A high-priority run in `emails` (leased first when nothing is paused), one in `reports`."""
    emails = services.submit(name="send-digest", queue="emails", priority=10)
    reports = services.submit(name="build-report", queue="reports")
    return emails, reports


def test_a_lease_with_no_queue_skips_a_paused_queue(backlog):
    emails, reports = backlog
    pause_queue(queue="emails", actor="olga", reason="SMTP outage")

    leased = services.lease(executor="exec-1", limit=5)

    assert [run.pk for run in leased] == [reports.pk]
    emails.refresh_from_db()
    assert emails.state == RunState.READY


def test_a_lease_naming_only_a_paused_queue_gets_nothing(backlog):
    pause_queue(queue="emails", actor="olga")

    assert services.lease(executor="exec-1", queues=["emails"], limit=5) == []


def test_a_lease_naming_a_paused_and_an_active_queue_gets_the_active_ones(backlog):
    _, reports = backlog
    pause_queue(queue="emails", actor="olga")

    leased = services.lease(executor="exec-1", queues=["emails", "reports"], limit=5)

    assert [run.pk for run in leased] == [reports.pk]


def test_every_queue_paused_leaves_nothing_to_lease(backlog):
    pause_queue(queue="emails", actor="olga")
    pause_queue(queue="reports", actor="olga")

    assert services.lease(executor="exec-1", limit=5) == []


def test_resuming_makes_the_queue_leasable_again_in_its_usual_order(backlog):
    emails, reports = backlog
    pause_queue(queue="emails", actor="olga")
    assert services.lease(executor="exec-1", queues=["emails"]) == []

    resume_queue(queue="emails", actor="olga", reason="SMTP back")

    assert [run.pk for run in services.lease(executor="exec-1")] == [emails.pk]
    assert [run.pk for run in services.lease(executor="exec-1")] == [reports.pk]


def test_a_paused_queue_keeps_its_runs_and_other_moves(backlog):
    emails, _ = backlog
    pause_queue(queue="emails", actor="olga")

    canceled = services.cancel(emails.pk, actor="olga", reason="not needed")

    assert canceled.state == RunState.CANCELED


def test_a_lease_reads_the_paused_set_once_however_many_runs_it_takes(backlog):
    pause_queue(queue="emails", actor="olga")
    services.submit(name="build-report", queue="reports")

    with CaptureQueriesContext(connection) as captured:
        leased = services.lease(executor="exec-1", limit=3)

    assert len(leased) == 2
    paused_reads = [q for q in captured.captured_queries if "runs_queuepause" in q["sql"]]
    assert len(paused_reads) == 1
