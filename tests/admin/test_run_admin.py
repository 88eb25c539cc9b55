"""The Run admin: fast changelist, read-only lifecycle, actions through the services."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runs import listing, services
from runs.models import Run, Transition
from runs.presentation import STATE_COLOURS
from runs.states import RunState
from tests.runpage.html import parse

pytestmark = pytest.mark.django_db
CHANGELIST = "admin:runs_run_changelist"


def changelist_ids(client, **query) -> list[str]:
    response = client.get(reverse(CHANGELIST), query)
    assert response.status_code == 200
    return [box.attrs["value"] for box in parse(response.content).find_all(
        "input", class_="action-select")]


def act(client, action: str, runs) -> list[str]:
    response = client.post(reverse(CHANGELIST), {
        "action": action, "_selected_action": [str(run.pk) for run in runs]})
    assert response.status_code == 302
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_changelist_colours_each_state_from_the_one_palette(admin_client_, make_run):
    make_run(RunState.FAILED)
    html = parse(admin_client_.get(reverse(CHANGELIST)).content)
    badge = html.find("span", class_="run-state")
    assert badge.text == "Failed"
    assert f"background:{STATE_COLOURS['failed']}" in badge.attrs["style"]


def test_the_changelist_filters_by_state_queue_and_created(admin_client_, make_run, now):
    failed = make_run(RunState.FAILED, queue="etl")
    make_run(RunState.READY, queue="etl")
    make_run(RunState.FAILED, queue="emails")
    assert changelist_ids(admin_client_, state="failed", queue="etl") == [str(failed.pk)]
    html = parse(admin_client_.get(reverse(CHANGELIST)).content)
    assert "?queue=emails" in {a.attrs.get("href") for a in html.find_all("a")}
    today = now.date().isoformat()
    assert len(changelist_ids(admin_client_, created_at__gte=today)) == 3


def test_the_changelist_searches_ids_names_and_lease_owners(admin_client_, make_run):
    target = make_run(RunState.RUNNING, name="nightly-etl", lease_owner="exec-42")
    make_run(RunState.RUNNING, name="send-report", lease_owner="exec-4")
    assert changelist_ids(admin_client_, q=str(target.pk)) == [str(target.pk)]
    assert changelist_ids(admin_client_, q=target.short_id) == [str(target.pk)]
    assert changelist_ids(admin_client_, q="nightly") == [str(target.pk)]
    assert changelist_ids(admin_client_, q="exec-42") == [str(target.pk)]


def test_the_changelist_never_counts_the_whole_table(admin_client_, make_run, monkeypatch):
    monkeypatch.setattr("runs.admin.COUNT_CAP", 3)
    for _ in range(5):
        make_run(RunState.FAILED)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client_.get(reverse(CHANGELIST), {"state": "failed"})
    assert response.status_code == 200
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the paginator counts (bounded)"
    assert all("LIMIT" in sql.upper() for sql in counts), counts
    assert len(queries) <= 12


def test_cancel_reports_each_outcome(admin_client_, make_run):
    ready, running, done = make_run(), make_run(RunState.RUNNING), make_run(RunState.COMPLETED)
    assert act(admin_client_, "cancel_runs", [ready, running, done]) == [
        "2 canceled; 1 skipped: already completed"]
    assert [Run.objects.get(pk=r.pk).state for r in (ready, running, done)] == [
        "canceled", "canceled", "completed"]
    assert Transition.objects.filter(run=ready).last().actor == "root"


@pytest.mark.parametrize(("action", "state", "expected", "after"), [
    ("suspend_runs", RunState.RUNNING, "1 suspended; 1 skipped: cannot suspend a ready run",
     "suspended"),
    ("resume_runs", RunState.SUSPENDED, "1 resumed; 1 skipped: cannot resume a ready run",
     "ready"),
    ("retry_runs", RunState.RETRY_WAIT, "1 retried; 1 skipped: cannot retry a ready run",
     "ready"),
])
def test_each_action_acts_through_the_services_and_reports(admin_client_, make_run, action,
                                                           state, expected, after):
    target, other = make_run(state), make_run(RunState.READY, name="bystander")
    assert act(admin_client_, action, [target, other]) == [expected]
    assert Run.objects.get(pk=target.pk).state == after
    assert Run.objects.get(pk=other.pk).state == "ready"


def test_rerun_makes_new_linked_runs(admin_client_, make_run):
    failed, ready = make_run(RunState.FAILED), make_run()
    assert act(admin_client_, "rerun_runs", [failed, ready]) == [
        "1 rerun; 1 skipped: cannot rerun a ready run"]
    assert Run.objects.get(rerun_of=failed).state == "ready"


def test_the_action_cap_applies_in_the_admin_too(admin_client_, make_run, settings):
    settings.RUNBOARD = {**settings.RUNBOARD, "BULK_ACTION_CAP": 2}
    runs = [make_run() for _ in range(3)]
    messages = act(admin_client_, "cancel_runs", runs)
    assert messages[0].startswith("More than 2 runs are eligible to cancel")
    assert not Run.objects.filter(state="canceled").exists()


def test_a_viewer_is_offered_no_action_and_cannot_forge_one(viewer_client, make_run):
    run = make_run()
    html = parse(viewer_client.get(reverse(CHANGELIST)).content)
    assert html.find("select", name="action") is None
    viewer_client.post(reverse(CHANGELIST), {"action": "cancel_runs",
                                             "_selected_action": [str(run.pk)]})
    assert Run.objects.get(pk=run.pk).state == "ready"


def test_a_forged_post_cannot_change_state_or_lifecycle_fields(admin_client_, make_run):
    run = make_run(RunState.RUNNING, name="etl", attempts=1)
    url = reverse("admin:runs_run_change", args=[run.pk])
    form = parse(admin_client_.get(url).content)
    assert form.find("input", name="name") is not None
    assert form.find("select", name="state") is None
    data = {
        "name": "etl-renamed", "queue": "default", "payload": "{}", "priority": "3",
        "scheduled_at_0": "2026-01-01", "scheduled_at_1": "00:00:00", "max_attempts": "3",
        "backoff_base_seconds": "2", "backoff_factor": "2", "backoff_cap_seconds": "300",
        "backoff_jitter": "0.1",
        # forged: none of these are form fields
        "state": "completed", "attempts": "9", "version": "99", "lease_owner": "mallory",
        "result": '{"forged": true}',
        "transitions-TOTAL_FORMS": "0", "transitions-INITIAL_FORMS": "0",
        "transitions-MIN_NUM_FORMS": "0", "transitions-MAX_NUM_FORMS": "0",
    }
    response = admin_client_.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    run.refresh_from_db()
    assert (run.name, run.priority) == ("etl-renamed", 3)
    # The edit is one new version (boards take the new card), never the forged 99.
    assert (run.state, run.attempts, run.version, run.lease_owner, run.result) == (
        "running", 1, 2, "exec-1", None)


def test_an_admin_save_never_overwrites_a_transition_that_committed_meanwhile(
        admin_client_, make_run, monkeypatch):
    run = make_run(RunState.RUNNING, name="etl")
    from runs.admin import RunAdmin

    real_save = RunAdmin.save_model

    def cancel_then_save(self, request, obj, form, change):
        services.cancel(obj.pk, actor="bob")  # lands between loading and saving
        real_save(self, request, obj, form, change)

    monkeypatch.setattr(RunAdmin, "save_model", cancel_then_save)
    url = reverse("admin:runs_run_change", args=[run.pk])
    admin_client_.post(url, {
        "name": "etl-2", "queue": "default", "payload": "{}", "priority": "0",
        "scheduled_at_0": "2026-01-01", "scheduled_at_1": "00:00:00", "max_attempts": "3",
        "backoff_base_seconds": "2", "backoff_factor": "2", "backoff_cap_seconds": "300",
        "backoff_jitter": "0.1", "transitions-TOTAL_FORMS": "0",
        "transitions-INITIAL_FORMS": "0"})
    run.refresh_from_db()
    assert (run.state, run.name) == ("canceled", "etl-2")


def test_a_finished_run_is_entirely_read_only(admin_client_, make_run):
    run = make_run(RunState.COMPLETED, name="done")
    html = parse(admin_client_.get(reverse("admin:runs_run_change", args=[run.pk])).content)
    assert html.find("input", name="name") is None


def test_runs_cannot_be_added_or_deleted_in_the_admin(admin_client_, make_run):
    run = make_run()
    assert admin_client_.get(reverse("admin:runs_run_add")).status_code == 403
    assert admin_client_.get(reverse("admin:runs_run_delete", args=[run.pk])).status_code == 403
    html = parse(admin_client_.get(reverse(CHANGELIST)).content)
    options = [o.attrs["value"] for o in html.find("select", name="action").find_all("option")]
    assert "delete_selected" not in options
    assert options[1:] == ["cancel_runs", "suspend_runs", "resume_runs", "retry_runs",
                           "rerun_runs"]


def test_the_change_page_shows_the_audit_trail_read_only(admin_client_, make_run):
    run = services.submit(name="etl")
    services.cancel(run.pk, actor="bob", reason="dup")
    html = parse(admin_client_.get(reverse("admin:runs_run_change", args=[run.pk])).content)
    group = html.find(id="transitions-group")
    assert group is not None
    text = group.text
    assert "bob" in text and "dup" in text
    assert group.find("input", name="transitions-0-reason") is None


def test_the_short_id_search_is_the_indexed_one(admin_client_, make_run, monkeypatch):
    calls = []
    real = listing.ShortId.as_sql

    def spy(self, compiler, conn, **extra):
        calls.append(1)
        return real(self, compiler, conn, **extra)

    monkeypatch.setattr(listing.ShortId, "as_sql", spy)
    run = make_run()
    assert changelist_ids(admin_client_, q=run.short_id) == [str(run.pk)]
    assert calls


def test_view_on_site_opens_the_run_page(admin_client_, make_run):
    run = make_run()
    html = parse(admin_client_.get(reverse("admin:runs_run_change", args=[run.pk])).content)
    link = html.find("a", class_="viewsitelink")
    assert link.attrs["href"] == reverse("run-detail", args=[run.pk])
    assert admin_client_.get(link.attrs["href"]).status_code == 200
