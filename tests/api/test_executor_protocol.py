"""The executor protocol over HTTP: lease, start, heartbeat, complete, fail — and stopping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs import services
from runs.models import Run
from tests.api.conftest import lease_one, running, submit

pytestmark = pytest.mark.django_db


def test_a_run_goes_through_its_whole_life_over_http(api):
    body = submit(api, payload={"n": 1})
    leased = lease_one(api, lease_seconds=60)
    assert (leased["id"], leased["state"], leased["lease_owner"]) == (body["id"], "leased",
                                                                      "exec-1")
    assert leased["payload"] == {"n": 1}
    started = api.post(f"/api/runs/{body['id']}/start")
    assert (started.status, started.body["state"], started.body["attempts"]) == (200, "running", 1)
    beat = api.post(f"/api/runs/{body['id']}/heartbeat", {"progress": 40, "consumed": {"t": 2}})
    assert beat.status == 200
    assert (beat.body["stop"], beat.body["run"]["progress"], beat.body["run"]["consumed"]) == (
        False, 40, {"t": 2})
    done = api.post(f"/api/runs/{body['id']}/complete", {"result": {"rows": 3}})
    assert (done.status, done.body["state"]) == (200, "completed")
    assert Run.objects.get(pk=body["id"]).result == {"rows": 3}


def test_lease_takes_higher_priority_first_within_the_queues_asked(api):
    submit(api, queue="a", priority=1)
    urgent = submit(api, queue="a", priority=9)
    submit(api, queue="b", priority=99)
    answer = api.post("/api/lease", {"queues": ["a"], "limit": 5})
    assert answer.body["runs"][0]["id"] == urgent["id"]
    assert {r["queue"] for r in answer.body["runs"]} == {"a"}
    assert len(answer.body["runs"]) == 2


def test_lease_with_nothing_ready_returns_no_runs(api):
    assert api.post("/api/lease").body == {"runs": []}


def test_a_token_cannot_lease_as_another_executor(api):
    answer = api.post("/api/lease", {"executor": "exec-7"})
    assert (answer.status, answer.body["code"], answer.body["field"]) == (
        403, "executor_mismatch", "executor")


@pytest.mark.parametrize("verb", ["start", "heartbeat", "complete", "fail"])
def test_a_token_acting_on_a_run_another_executor_holds_is_a_403(api, other_api, verb):
    submit(api)
    run = lease_one(api)
    if verb != "start":
        api.post(f"/api/runs/{run['id']}/start")
    before = Run.objects.get(pk=run["id"]).version
    body = {"error": "boom"} if verb == "fail" else {}
    answer = other_api.post(f"/api/runs/{run['id']}/{verb}", body)
    assert answer.status == 403
    assert answer.body["code"] == "not_lease_holder"
    assert Run.objects.get(pk=run["id"]).version == before


def test_heartbeat_on_a_canceled_run_is_a_409_telling_the_executor_to_stop(api):
    run = running(api)
    services.cancel(run["id"], actor="olga", reason="duplicate")
    answer = api.post(f"/api/runs/{run['id']}/heartbeat", {"progress": 50})
    assert answer.status == 409
    assert answer.body["code"] == "canceled"
    assert answer.body["stop"] is True
    assert answer.body["current_state"] == "canceled"
    assert "must stop" in answer.body["message"]


def test_completing_after_the_lease_lapsed_is_a_409_lease_lost(api):
    run = running(api)
    Run.objects.filter(pk=run["id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    answer = api.post(f"/api/runs/{run['id']}/complete", {"result": 1})
    assert (answer.status, answer.body["code"], answer.body["stop"]) == (409, "lease_lost", True)
    assert Run.objects.get(pk=run["id"]).state == "running"


def test_an_executor_whose_lapsed_lease_went_to_another_must_stop_409(api, other_api):
    submit(api)
    run = lease_one(api, lease_seconds=1)
    Run.objects.filter(pk=run["id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    services.tick()
    lease_one(other_api)
    answer = api.post(f"/api/runs/{run['id']}/start")
    assert (answer.status, answer.body["code"], answer.body["stop"]) == (409, "lease_lost", True)


def test_starting_twice_is_a_409_naming_the_current_state(api):
    run = running(api)
    answer = api.post(f"/api/runs/{run['id']}/start")
    assert (answer.status, answer.body["code"], answer.body["current_state"]) == (
        409, "not_allowed", "running")


def test_a_failure_with_retries_left_backs_off_and_the_last_one_fails(api):
    run = running(api, max_attempts=2, backoff={"base": 0, "jitter": 0})
    first = api.post(f"/api/runs/{run['id']}/fail", {"error": "timeout"})
    assert (first.status, first.body["state"]) == (200, "retry_wait")
    services.tick()
    lease_one(api)
    api.post(f"/api/runs/{run['id']}/start")
    last = api.post(f"/api/runs/{run['id']}/fail", {"error": "timeout again"})
    assert (last.body["state"], last.body["attempts"]) == ("failed", 2)


def test_a_non_retryable_failure_fails_at_once(api):
    run = running(api, max_attempts=5)
    answer = api.post(f"/api/runs/{run['id']}/fail", {"error": "bad input", "retryable": False})
    assert answer.body["state"] == "failed"


def test_fail_needs_an_error_message(api):
    run = running(api)
    answer = api.post(f"/api/runs/{run['id']}/fail", {})
    assert (answer.status, answer.body["field"]) == (400, "error")


def test_a_heartbeat_crossing_the_budget_suspends_and_says_stop(api):
    run = running(api, budget={"tokens": 100})
    answer = api.post(f"/api/runs/{run['id']}/heartbeat", {"consumed": {"tokens": 120}})
    assert answer.status == 200
    assert answer.body["stop"] is True
    assert answer.body["run"]["state"] == "suspended"
    assert "budget exhausted" in answer.body["message"]


def test_a_bad_progress_is_a_400_and_changes_nothing(api):
    run = running(api)
    before = Run.objects.get(pk=run["id"]).version
    answer = api.post(f"/api/runs/{run['id']}/heartbeat", {"progress": 101})
    assert (answer.status, answer.body["field"]) == (400, "progress")
    assert Run.objects.get(pk=run["id"]).version == before


def test_executor_verbs_on_an_unknown_run_are_404(api):
    answer = api.post("/api/runs/01a2203d-1c3e-7f00-8000-000000000000/start")
    assert (answer.status, answer.body["code"]) == (404, "not_found")
