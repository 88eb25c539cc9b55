"""Submitting, reading and listing runs through the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import Run, Transition
from tests.api.conftest import submit

pytestmark = pytest.mark.django_db


def test_submitting_a_run_makes_it_ready_with_everything_given(api):
    answer = api.post("/api/runs", {
        "name": "etl", "queue": "ingest", "payload": {"file": "a.csv"}, "priority": 5,
        "max_attempts": 4, "backoff": {"base": 1, "factor": 3, "cap": 30, "jitter": 0},
        "budget": {"tokens": 1000},
    })
    assert answer.status == 201
    run = Run.objects.get(pk=answer.body["id"])
    assert (run.state, run.queue, run.payload, run.priority, run.max_attempts) == (
        "ready", "ingest", {"file": "a.csv"}, 5, 4)
    assert (run.backoff_base_seconds, run.backoff_factor, run.backoff_cap_seconds,
            run.backoff_jitter) == (1, 3, 30, 0)
    assert run.budget == {"tokens": 1000}
    assert answer.body["payload"] == {"file": "a.csv"}
    assert Transition.objects.get(run=run).actor == "exec-1"


def test_a_run_for_later_is_scheduled(api):
    later = timezone.now() + timedelta(hours=1)
    body = submit(api, scheduled_at=later.isoformat())
    assert body["state"] == "scheduled"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "etl", "priority": "high"}, "priority"),
    ({"name": "etl", "priority": 10**12}, "priority"),
    ({"name": "etl", "max_attempts": 0}, "max_attempts"),
    ({"name": "etl", "budget": {"tokens": -1}}, "budget.tokens"),
    ({"name": "etl", "backoff": {"jitter": 2}}, "backoff.jitter"),
    ({"name": "etl", "scheduled_at": "yesterday-ish"}, "scheduled_at"),
    ({"name": "etl", "scheduled_at": "9999-12-31T23:59:59+00:00"}, "scheduled_at"),
    ({"name": "etl", "colour": "red"}, "colour"),
    ({"name": "e\u0000tl"}, "name"),
])
def test_invalid_fields_are_a_400_naming_the_field_and_create_nothing(api, body, field):
    answer = api.post("/api/runs", body)
    assert answer.status == 400
    assert answer.body["code"] == "invalid"
    assert answer.body["field"] == field
    assert field in answer.body["message"]
    assert not Run.objects.exists()


def test_getting_a_run_shows_its_payload_and_state(api):
    body = submit(api, payload=[1, 2, 3])
    answer = api.get(f"/api/runs/{body['id']}")
    assert answer.status == 200
    assert (answer.body["state"], answer.body["payload"]) == ("ready", [1, 2, 3])


def test_an_unknown_run_is_a_404(api):
    answer = api.get("/api/runs/01a2203d-1c3e-7f00-8000-000000000000")
    assert answer.status == 404
    assert answer.body == {"status": 404, "code": "not_found", "message": answer.body["message"]}


def test_a_malformed_run_id_is_a_400_naming_it(api):
    answer = api.get("/api/runs/not-a-uuid")
    assert (answer.status, answer.body["field"]) == (400, "run_id")


def test_listing_filters_by_state_queue_and_name(api, make_run):
    make_run("ready", name="etl", queue="ingest")
    make_run("failed", name="etl", queue="ingest")
    make_run("ready", name="report", queue="ingest")
    make_run("ready", name="etl", queue="default")
    answer = api.get("/api/runs", {"state": "ready", "queue": "ingest", "name": "etl"})
    assert answer.status == 200
    assert [(r["name"], r["queue"], r["state"]) for r in answer.body["items"]] == [
        ("etl", "ingest", "ready")]
    assert "payload" not in answer.body["items"][0]


def test_listing_pages_with_a_cursor_through_every_run_once(api, make_run, now):
    made = [make_run("ready", state_changed_at=now - timedelta(seconds=i)) for i in range(7)]
    # Two runs changed at the same instant: the id breaks the tie.
    made.append(make_run("ready", state_changed_at=now - timedelta(seconds=3)))
    seen, cursor, pages = [], None, 0
    while True:
        answer = api.get("/api/runs", {"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert answer.status == 200 and len(answer.body["items"]) <= 3
        seen += [item["id"] for item in answer.body["items"]]
        pages += 1
        cursor = answer.body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(str(run.pk) for run in made)
    assert len(seen) == len(set(seen))
    changed = [Run.objects.get(pk=i).state_changed_at for i in seen]
    assert changed == sorted(changed, reverse=True)


@pytest.mark.parametrize(("params", "field"), [
    ({"state": "sleeping"}, "state"),
    ({"limit": 201}, "limit"),
    ({"limit": 0}, "limit"),
    ({"cursor": "bm9wZQ"}, "cursor"),
])
def test_bad_list_parameters_are_a_400(api, params, field):
    answer = api.get("/api/runs", params)
    assert answer.status == 400
    assert answer.body["field"] == field or field in answer.body["message"]


def test_anonymous_callers_get_a_401_with_a_bearer_challenge(anonymous):
    for answer in (anonymous.get("/api/runs"), anonymous.post("/api/runs", {"name": "x"}),
                   anonymous.post("/api/lease", {})):
        assert answer.status == 401
        assert answer.body["code"] == "unauthorized"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_api_path_is_a_json_404(api):
    answer = api.get("/api/nothing-here")
    assert (answer.status, answer.body["code"]) == (404, "not_found")


@pytest.mark.parametrize("filters", [{"queue": "ingest"}, {"name": "etl"}])
def test_a_queue_or_name_filter_pages_across_states_newest_first(api, make_run, now, filters):
    states = ["ready", "failed", "running", "ready", "scheduled", "completed", "retry_wait"]
    wanted = [make_run(state, name="etl", queue="ingest",
                       state_changed_at=now - timedelta(seconds=i))
              for i, state in enumerate(states)]
    make_run("ready", name="other", queue="default")
    seen, cursor = [], None
    while True:
        params = {**filters, "limit": 2, **({"cursor": cursor} if cursor else {})}
        answer = api.get("/api/runs", params)
        seen += [item["id"] for item in answer.body["items"]]
        cursor = answer.body["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(run.pk) for run in wanted]
