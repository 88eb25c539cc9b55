"""The run page: every field, escaped JSON, meters, the timeline in order, links, buttons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from runs import services
from runs.models import Run, Transition
from runs.states import RunState
from tests.runpage.html import parse

pytestmark = pytest.mark.django_db


def page(client, run: Run):
    response = client.get(reverse("run-detail", args=[run.pk]))
    assert response.status_code == 200
    return parse(response.content)


def test_an_anonymous_visitor_is_sent_to_the_login_page(client, make_run):
    run = make_run()
    response = client.get(reverse("run-detail", args=[run.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_an_unknown_run_is_a_404(watcher_client):
    response = watcher_client.get("/runs/0190f0a0-0000-7000-8000-000000000000/")
    assert response.status_code == 404


def test_the_page_shows_every_field_of_the_run(watcher_client, make_run):
    run = make_run(RunState.RUNNING, lease_owner="exec-9", priority=7)
    html = page(watcher_client, run)
    shown = {row.attrs["data-field"]: row.find("td").text for row in html.find_all("tr")
             if "data-field" in row.attrs}
    stored = {f.name for f in Run._meta.concrete_fields} - {"payload", "result"}
    assert set(shown) == stored
    assert shown["lease_owner"] == "exec-9"
    assert shown["priority"] == "7"
    assert shown["state"] == "Running (running)"


def test_payload_and_result_are_pretty_json_and_escaped(watcher_client, make_run):
    run = make_run(RunState.RUNNING, payload={"html": "<script>alert(1)</script>", "n": [1, 2]})
    services.complete(run.pk, executor="exec-1", result={"b": 1, "a": "<b>"})
    response = watcher_client.get(reverse("run-detail", args=[run.pk]))
    assert b"<script>alert(1)</script>" not in response.content
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in response.content
    html = parse(response.content)
    assert html.find(id="payload").text == (
        '{\n  "html": "<script>alert(1)</script>",\n  "n": [\n    1,\n    2\n  ]\n}')
    assert html.find(id="result").text == '{\n  "a": "<b>",\n  "b": 1\n}'


def test_budget_meters_show_use_against_each_limit(watcher_client, make_run):
    run = make_run(RunState.RUNNING, budget={"cost_cents": 500, "tokens": 1000},
                   consumed={"cost_cents": 512, "tokens": 250})
    html = page(watcher_client, run)
    meters = {row.attrs["data-dimension"]: row for row in html.find_all(class_="meter-row")}
    assert set(meters) == {"cost_cents", "tokens"}
    assert meters["tokens"].find(class_="meter-bar").find("span").attrs["style"] == "width: 25%"
    assert meters["tokens"].find(class_="meter-text").text == "250/1000 (25%)"
    assert "exhausted" in meters["cost_cents"].find(class_="meter-text").attrs["class"]


def test_an_overspent_budget_reads_its_real_share_in_the_over_colour(watcher_client, make_run):
    run = make_run(RunState.SUSPENDED, budget={"tokens": 300}, consumed={"tokens": 400},
                   suspended_by="budget", suspend_reason="budget exhausted: tokens 400/300")
    meter = page(watcher_client, run).find(class_="meter-row")
    assert meter.find(class_="meter-text").text == "400/300 (133%)"  # not "(100%)"
    bar = meter.find(class_="meter-bar")
    assert "over" in bar.attrs["class"]  # the board's red, not a green <meter>
    assert bar.find("span").attrs["style"] == "width: 100%"


def test_a_suspension_ends_the_attempt_that_ran_not_the_one_before(watcher_client, make_run):
    run = services.submit(name="etl", max_attempts=3)
    services.lease(executor="exec-1")
    services.start(run.pk, executor="exec-1")
    services.suspend(run.pk, actor="olga", reason="maintenance")
    groups = page(watcher_client, run).find(id="timeline").find_all("section")
    assert [g.attrs["data-attempt"] for g in groups] == ["0", "1"]
    assert [m.find(class_="move-states").text for m in groups[1].find_all("li")] == [
        "ready → leased", "leased → running", "running → suspended"]


def test_the_timeline_lists_every_move_in_order_grouped_by_attempt(watcher_client, now):
    run = services.submit(name="etl", max_attempts=3, backoff_base=1, backoff_jitter=0)
    services.lease(executor="exec-1")
    services.start(run.pk, executor="exec-1")
    services.fail(run.pk, executor="exec-1", error="timeout")
    services.tick(now=now + timedelta(minutes=5))  # backoff over: ready again
    services.lease(executor="exec-2")
    services.start(run.pk, executor="exec-2")
    services.complete(run.pk, executor="exec-2", result={})
    html = page(watcher_client, run)
    groups = html.find(id="timeline").find_all("section")
    assert [g.attrs["data-attempt"] for g in groups] == ["0", "1", "2"]
    assert [g.find("h3").text.strip() for g in groups] == ["No attempt counted", "Attempt 1",
                                                           "Attempt 2"]
    # The lease that starts an attempt belongs to it (its audit row still counts the one
    # before), and so does the way out of it.
    per_group = [[m.find(class_="move-states").text for m in g.find_all("li")] for g in groups]
    assert per_group == [["∅ → ready"],
                         ["ready → leased", "leased → running", "running → retry_wait",
                          "retry_wait → ready"],
                         ["ready → leased", "leased → running", "running → completed"]]
    heads = [span.text for span in html.find(class_="move-head").find_all("span")]
    assert heads == ["Move", "When", "Lasted", "Who", "Why"]
    moves = [m.find(class_="move-states").text for m in html.find_all("li", class_="move")]
    assert moves == ["∅ → ready", "ready → leased", "leased → running", "running → retry_wait",
                     "retry_wait → ready", "ready → leased", "leased → running",
                     "running → completed"]
    ids = [int(m.attrs["data-transition-id"]) for m in html.find_all("li", class_="move")]
    assert ids == sorted(ids)
    actors = [m.find(class_="move-actor").text for m in html.find_all("li", class_="move")]
    assert actors[3:5] == ["exec-1", "clock"]
    assert [m.find(class_="move-reason").text for m in html.find_all("li", class_="move")][3] \
        == "timeout"


def test_a_run_links_to_the_run_it_reruns_and_to_its_reruns(watcher_client, make_run):
    original = make_run(RunState.FAILED)
    again = services.rerun(original.pk, actor="olga")
    original_page = page(watcher_client, original)
    links = [a.attrs["href"] for a in original_page.find(id="rerun-list").find_all("a")]
    assert links == [reverse("run-detail", args=[again.pk])]
    assert page(watcher_client, again).find(id="rerun-of").attrs["href"] == reverse(
        "run-detail", args=[original.pk])


def buttons(html) -> dict[str, bool]:
    """Action name → visible, for the action forms on the page."""
    return {form.attrs["data-action"]: "hidden" not in form.attrs
            for form in html.find_all("form", class_="run-action")}


@pytest.mark.parametrize(("state", "visible"), [
    (RunState.READY, {"cancel"}),
    (RunState.RUNNING, {"cancel", "suspend"}),
    (RunState.SUSPENDED, {"cancel", "resume"}),
    (RunState.RETRY_WAIT, {"cancel", "retry"}),
    (RunState.COMPLETED, {"rerun"}),
])
def test_an_operator_sees_exactly_the_actions_the_state_allows(
        operator_client, make_run, state, visible):
    html = page(operator_client, make_run(state))
    shown = buttons(html)
    assert {name for name, on in shown.items() if on} == visible
    run_id = html.find("article").attrs["data-run-id"]
    for form in html.find_all("form", class_="run-action"):
        assert form.attrs["action"] == f"/runs/{run_id}/actions/{form.attrs['data-action']}/"
        assert form.find("input", name="csrfmiddlewaretoken") is not None


def test_a_watcher_without_permissions_sees_no_action(watcher_client, make_run):
    html = page(watcher_client, make_run(RunState.RUNNING))
    assert buttons(html) == {}


def test_an_operator_with_only_cancel_sees_only_cancel(client, watcher, make_run):
    from tests.runpage.conftest import grant

    client.force_login(grant(watcher, "cancel"))
    assert buttons(page(client, make_run(RunState.RUNNING))) == {"cancel": True}


def test_the_page_needs_a_fixed_number_of_queries(
        operator_client, make_run, django_assert_max_num_queries):
    run = make_run(RunState.FAILED)
    for _ in range(5):
        services.rerun(run.pk, actor="olga")
    with django_assert_max_num_queries(9):
        page(operator_client, run)


def test_the_live_endpoint_returns_the_answer_and_only_newer_moves(operator_client, make_run):
    run = services.submit(name="etl")
    first = Transition.objects.get(run=run)
    services.cancel(run.pk, actor="olga", reason="no longer needed")
    data = operator_client.get(
        reverse("run-live", args=[run.pk]), {"after": first.pk}).json()
    assert data["answer"] == {"code": "canceled",
                              "text": "Finished: canceled by olga: no longer needed"}
    assert [(m["from"], m["to"], m["actor"], m["group_label"]) for m in data["timeline"]] == [
        ("ready", "canceled", "olga", "No attempt counted")]
    assert data["actions"] == ["rerun"]
    assert data["state"] == "canceled"


def test_the_live_endpoint_needs_a_login(client, make_run):
    response = client.get(reverse("run-live", args=[make_run().pk]))
    assert response.status_code == 302


def test_a_run_that_bounced_a_lot_shows_its_latest_moves(watcher_client, make_run, monkeypatch):
    from runs import detail

    monkeypatch.setattr(detail, "TIMELINE_LIMIT", 3)
    monkeypatch.setattr("dashboard.runpage.views.TIMELINE_LIMIT", 3)
    run = services.submit(name="flaky")
    for _ in range(2):
        services.lease(executor="exec-1")
        services.start(run.pk, executor="exec-1")
        services.suspend(run.pk, actor="olga", reason="pause")
        services.resume(run.pk, actor="olga")
    html = page(watcher_client, run)
    moves = [m.find(class_="move-states").text for m in html.find_all("li", class_="move")]
    assert moves == ["leased → running", "running → suspended", "suspended → ready"]
    assert html.find(id="timeline-truncated").text == (
        "Older moves are left out: showing the latest 3.")


def test_an_operator_may_raise_the_budget_from_the_page_a_watcher_may_not(
        operator_client, watcher_client, make_run):
    run = make_run(RunState.SUSPENDED, budget={"tokens": 300}, consumed={"tokens": 400},
                   suspended_by="budget", suspend_reason="budget exhausted: tokens 400/300")
    form = page(operator_client, run).find(id="replenish-form")
    assert form.attrs["data-url"] == f"/api/runs/{run.pk}/replenish"
    assert form.find("input").attrs["name"] == "tokens"
    assert page(watcher_client, run).find(id="replenish-form") is None
    finished = make_run(RunState.COMPLETED, budget={"tokens": 300})
    assert page(operator_client, finished).find(id="replenish-form") is None


def test_destructive_buttons_are_marked_and_name_their_run(operator_client, make_run):
    run = make_run(RunState.RUNNING, name="etl")
    html = page(operator_client, run)
    cancel = html.find("form", **{"data-action": "cancel"}).find("button")
    resume = html.find("form", **{"data-action": "resume"}).find("button")
    assert cancel.attrs.get("class") == "danger"
    assert "class" not in resume.attrs
    assert cancel.attrs["aria-label"] == f"Cancel etl {run.short_id}"
