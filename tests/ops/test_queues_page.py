"""The Queues page and its pause / resume endpoints: what an operator sees, what the server
answers (200 / 400 / 403 / 404 / 409 with a code), and a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from runs.queue_overview import overview_query
from runs.queues import QueueEvent, pause_queue, paused_queue_names
from tests.ops.conftest import queries_for

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def fleet(make_run, now):
    """Two queues: `emails` with a backlog and throughput, `reports` with one ready run."""
    make_run("ready", queue="emails", state_changed_at=now - timedelta(minutes=3, seconds=12))
    make_run("ready", queue="emails", state_changed_at=now - timedelta(seconds=5))
    make_run("running", queue="emails")
    make_run("leased", queue="emails")
    make_run("completed", queue="emails", state_changed_at=now - timedelta(seconds=20))
    make_run("completed", queue="emails", state_changed_at=now - timedelta(minutes=20))
    make_run("completed", queue="emails", state_changed_at=now - timedelta(hours=2))
    make_run("failed", queue="emails", state_changed_at=now - timedelta(minutes=30))
    make_run("ready", queue="reports")


def row_of(html: str, queue: str) -> str:
    start = html.index(f'data-queue="{queue}"')
    return html[start:html.index("</tr>", start)]


def test_the_page_needs_a_login(fleet):
    answer = Client().get("/queues/")

    assert answer.status_code == 302
    assert answer["Location"].startswith("/login/")


def test_each_queue_shows_backlog_latency_work_in_hand_and_throughput(fleet, watcher_client):
    html = watcher_client.get("/queues/").content.decode()

    emails = row_of(html, "emails")
    assert 'data-label="Ready">2<' in emails
    assert ">3 min 1" in emails  # the oldest ready run has waited 3 min 12 s (and counting)
    assert "Oldest ready run waiting since" in emails and " UTC" in emails
    assert 'data-label="Running">1 <span class="muted">+ 1 leased</span>' in emails
    minute, hour = emails.split('data-label="Last minute">')[1].split('data-label="Last hour">')
    assert "1 completed" in minute and "0 failed" in minute
    assert "2 completed" in hour and "1 failed" in hour
    assert "Active" in emails
    assert 'data-label="Ready">1<' in row_of(html, "reports")


def test_a_watcher_sees_no_pause_buttons(fleet, watcher_client):
    html = watcher_client.get("/queues/").content.decode()

    assert "<form" not in html.split('id="queues"')[1].split("</table>")[0]
    assert "needs the “Can pause and resume queues” permission" in html


def test_a_paused_queue_says_who_paused_it_when_and_why(fleet, operator_client):
    pause_queue(queue="emails", actor="olga", reason="SMTP outage")

    html = operator_client.get("/queues/").content.decode()

    emails = row_of(html, "emails")
    assert '<tr class="is-paused" data-queue="emails">' in html
    assert "Paused" in emails and "by olga" in emails and "SMTP outage" in emails
    assert 'data-verb="resume"' in emails
    assert 'data-verb="pause"' in row_of(html, "reports")
    assert "1 paused" in html
    assert "Paused</strong> <span class=\"queue\">emails</span> by olga" in html


def test_an_operator_pauses_a_queue_with_a_form_post(fleet, operator_client):
    answer = operator_client.post("/queues/pause/", {"queue": "emails", "reason": "SMTP outage"})

    assert answer.status_code == 302 and answer["Location"] == "/queues/"
    assert paused_queue_names() == ["emails"]
    assert QueueEvent.objects.get().actor == "quinn"


def test_an_operator_resumes_a_queue_over_json(fleet, operator_client):
    pause_queue(queue="emails", actor="olga")

    answer = operator_client.post("/queues/resume/", {"queue": "emails"}, **JSON)

    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "action": "resume", "queue": "emails",
                             "message": "queue emails resumed"}
    assert paused_queue_names() == []


def test_without_the_permission_the_answer_is_403_and_nothing_changes(fleet, watcher_client):
    as_json = watcher_client.post("/queues/pause/", {"queue": "emails"}, **JSON)
    as_form = watcher_client.post("/queues/pause/", {"queue": "emails"})

    assert as_json.status_code == 403 and as_json.json()["code"] == "forbidden"
    assert as_form.status_code == 403
    assert paused_queue_names() == [] and not QueueEvent.objects.exists()


def test_without_a_login_the_answer_is_403_or_the_login_page(fleet):
    assert Client().post("/queues/pause/", {"queue": "emails"}, **JSON).status_code == 403
    assert Client().post("/queues/pause/", {"queue": "emails"})["Location"].startswith("/login/")
    assert paused_queue_names() == []


def test_an_unknown_queue_is_404(fleet, operator_client):
    answer = operator_client.post("/queues/pause/", {"queue": "nope"}, **JSON)

    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


def test_an_unknown_verb_is_404(fleet, operator_client):
    answer = operator_client.post("/queues/drain/", {"queue": "emails"}, **JSON)

    assert answer.status_code == 404 and answer.json()["code"] == "unknown_action"


def test_pausing_twice_is_409_and_resuming_a_running_queue_is_409(fleet, operator_client):
    pause_queue(queue="emails", actor="olga")

    again = operator_client.post("/queues/pause/", {"queue": "emails"}, **JSON)
    not_paused = operator_client.post("/queues/resume/", {"queue": "reports"}, **JSON)

    assert (again.status_code, again.json()["code"]) == (409, "already_paused")
    assert (not_paused.status_code, not_paused.json()["code"]) == (409, "not_paused")


def test_a_refused_form_post_comes_back_with_the_message(fleet, operator_client):
    pause_queue(queue="emails", actor="olga")

    answer = operator_client.post("/queues/pause/", {"queue": "emails"}, follow=True)

    assert "already paused (by olga" in answer.content.decode()


def test_a_missing_queue_name_is_400(fleet, operator_client):
    answer = operator_client.post("/queues/pause/", {}, **JSON)

    assert (answer.status_code, answer.json()["code"]) == (400, "invalid")


def test_actions_need_the_csrf_token(fleet, queue_operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(queue_operator)

    refused = client.post("/queues/pause/", {"queue": "emails"})
    assert refused.status_code == 403
    assert paused_queue_names() == []

    client.get("/queues/")  # sets the CSRF cookie, as the page's forms carry the token
    token = client.cookies["csrftoken"].value
    accepted = client.post("/queues/pause/", {"queue": "emails", "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302
    assert paused_queue_names() == ["emails"]


def test_actions_are_post_only(fleet, operator_client):
    assert operator_client.get("/queues/pause/?queue=emails").status_code == 405


def test_the_page_costs_the_same_queries_for_2_queues_as_for_40(
        fleet, operator_client, make_run):
    few = queries_for(operator_client, "/queues/")
    for index in range(38):
        make_run("ready", queue=f"queue-{index:02d}")
    pause_queue(queue="queue-07", actor="olga")
    assert queries_for(operator_client, "/queues/") == few


def test_the_top_bar_links_both_pages(watcher_client):
    html = watcher_client.get("/queues/").content.decode()

    assert 'href="/queues/"' in html and 'href="/executors/"' in html


def test_latency_counts_from_when_the_oldest_run_became_ready(make_run, watcher_client):
    make_run("ready", queue="q", state_changed_at=timezone.now() - timedelta(hours=2, minutes=5))

    html = watcher_client.get("/queues/").content.decode()

    assert ">2 h 05 min<" in row_of(html, "q")


@pytest.mark.postgres
def test_on_postgresql_every_figure_is_an_index_range_never_a_scan_of_runs(fleet):
    """The planner picks sequential scans on tiny tables; forbid them to see the indexes fit."""
    sql, params = overview_query(["emails", "reports"], now=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "Seq Scan on runs_run" not in plan, plan
    assert "run_queue_state" in plan or "run_lease_queue_order" in plan, plan
