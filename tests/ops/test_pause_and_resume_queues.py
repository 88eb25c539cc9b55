"""`pause_queue` / `resume_queue`: the current state, the audit row in the same transaction,
and the refusals with their codes."""

from __future__ import annotations

from unittest import mock

import pytest
from django.contrib.auth.models import Group

from runs import services
from runs.exceptions import (
    InvalidInput,
    QueueAlreadyPaused,
    QueueNotFound,
    QueueNotPaused,
)
from runs.queues import QueueEvent, QueuePause, pause_queue, paused_queue_names, resume_queue

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def emails_queue():
    return services.submit(name="send-digest", queue="emails")


def test_pausing_records_who_when_and_why(now):
    pause = pause_queue(queue="emails", actor="olga", reason="SMTP outage", now=now)

    assert (pause.queue, pause.paused_by, pause.reason, pause.paused_at) == (
        "emails", "olga", "SMTP outage", now)
    assert paused_queue_names() == ["emails"]
    event = QueueEvent.objects.get()
    assert (event.queue, event.action, event.actor, event.reason, event.at) == (
        "emails", "pause", "olga", "SMTP outage", now)


def test_resuming_removes_the_pause_and_appends_to_the_trail():
    pause_queue(queue="emails", actor="olga", reason="SMTP outage")

    event = resume_queue(queue="emails", actor="omar", reason="SMTP back")

    assert paused_queue_names() == []
    assert (event.action, event.actor, event.reason) == ("resume", "omar", "SMTP back")
    assert list(QueueEvent.objects.order_by("id").values_list("action", "actor")) == [
        ("pause", "olga"), ("resume", "omar")]


def test_the_pause_is_not_kept_when_its_audit_row_cannot_be_written():
    with mock.patch.object(QueueEvent.objects, "create", side_effect=RuntimeError("disk full")), \
            pytest.raises(RuntimeError):
        pause_queue(queue="emails", actor="olga")

    assert not QueuePause.objects.exists()
    assert not QueueEvent.objects.exists()


def test_the_resume_is_not_kept_when_its_audit_row_cannot_be_written():
    pause_queue(queue="emails", actor="olga")

    with mock.patch.object(QueueEvent.objects, "create", side_effect=RuntimeError("disk full")), \
            pytest.raises(RuntimeError):
        resume_queue(queue="emails", actor="olga")

    assert paused_queue_names() == ["emails"]
    assert QueueEvent.objects.count() == 1


def test_pausing_a_paused_queue_is_refused_and_writes_nothing():
    pause_queue(queue="emails", actor="olga")

    with pytest.raises(QueueAlreadyPaused) as refused:
        pause_queue(queue="emails", actor="omar")

    assert refused.value.code == "already_paused"
    assert "already paused (by olga" in refused.value.message
    assert QueueEvent.objects.count() == 1


def test_resuming_a_running_queue_is_refused():
    with pytest.raises(QueueNotPaused) as refused:
        resume_queue(queue="emails", actor="olga")

    assert refused.value.code == "not_paused"
    assert not QueueEvent.objects.exists()


@pytest.mark.parametrize("verb", [pause_queue, resume_queue])
def test_a_queue_that_never_had_a_run_is_not_found(verb):
    with pytest.raises(QueueNotFound) as refused:
        verb(queue="no-such-queue", actor="olga")

    assert refused.value.code == "not_found"
    assert not QueueEvent.objects.exists()


@pytest.mark.parametrize("queue", ["", "   ", "q" * 101, None, 7])
def test_a_queue_name_must_be_text_of_1_to_100_characters(queue):
    with pytest.raises(InvalidInput):
        pause_queue(queue=queue, actor="olga")


def test_a_queue_without_ready_runs_can_still_be_paused():
    run = services.lease(executor="exec-1", queues=["emails"])[0]
    services.start(run.pk, executor="exec-1")
    services.complete(run.pk, executor="exec-1")

    pause_queue(queue="emails", actor="olga")

    assert paused_queue_names() == ["emails"]


def test_queue_events_are_append_only():
    pause_queue(queue="emails", actor="olga")
    event = QueueEvent.objects.get()

    event.reason = "rewritten"
    with pytest.raises(InvalidInput):
        event.save()
    with pytest.raises(InvalidInput):
        event.delete()
    assert QueueEvent.objects.get().reason == ""


def test_the_run_operators_group_may_pause_queues():
    group = Group.objects.get(name="Run operators")

    assert group.permissions.filter(content_type__app_label="runs",
                                    codename="pause_queue").exists()


def test_the_admin_shows_the_queue_trail_read_only(admin_client):
    pause_queue(queue="emails", actor="olga", reason="SMTP outage")
    event = QueueEvent.objects.get()

    listing = admin_client.get("/admin/runs/queueevent/")
    page = admin_client.get(f"/admin/runs/queueevent/{event.pk}/change/")
    delete = admin_client.post(f"/admin/runs/queueevent/{event.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200 and "SMTP outage" in listing.content.decode()
    assert page.status_code == 200 and 'name="reason"' not in page.content.decode()
    assert delete.status_code == 403
    assert admin_client.get("/admin/runs/queuepause/add/").status_code == 403
    assert QueueEvent.objects.count() == 1
