"""`POST /api/lease {"start": true}`: leased and started in one request, both moves recorded."""

from __future__ import annotations

import pytest

from runs import services
from runs.changelog.models import Change
from runs.models import Run
from runs.states import RunState
from tests.api.conftest import submit

pytestmark = pytest.mark.django_db


def test_lease_with_start_returns_running_runs_with_an_attempt_counted(api):
    submitted = submit(api, payload={"n": 1})
    answer = api.post("/api/lease", {"limit": 1, "lease_seconds": 60, "start": True})
    assert answer.status == 200, answer.body
    (run,) = answer.body["runs"]
    assert (run["id"], run["state"], run["attempts"], run["lease_owner"]) == (
        submitted["id"], "running", 1, "exec-1")
    assert run["payload"] == {"n": 1}
    assert run["started_at"] is not None and run["lease_expires_at"] is not None
    assert Run.objects.get(pk=run["id"]).state == RunState.RUNNING


def test_lease_with_start_writes_both_audit_rows_and_both_change_log_rows(api):
    submitted = submit(api)
    api.post("/api/lease", {"start": True})
    run = Run.objects.get(pk=submitted["id"])
    moves = list(run.transitions.order_by("id").values_list("from_state", "to_state", "actor",
                                                            "attempt"))
    assert moves == [("", "ready", "exec-1", 0), ("ready", "leased", "exec-1", 0),
                     ("leased", "running", "exec-1", 1)]
    logged = list(Change.objects.filter(run_id=run.pk).order_by("id").values_list(
        "from_state", "to_state", "version"))
    assert logged[-2:] == [("ready", "leased", run.version - 1),
                           ("leased", "running", run.version)]


def test_a_run_leased_with_start_takes_heartbeats_and_completes(api):
    submitted = submit(api)
    api.post("/api/lease", {"start": True})
    beat = api.post(f"/api/runs/{submitted['id']}/heartbeat", {"progress": 30})
    assert (beat.status, beat.body["stop"]) == (200, False)
    done = api.post(f"/api/runs/{submitted['id']}/complete", {"result": 1})
    assert (done.status, done.body["state"]) == (200, "completed")


def test_starting_a_run_leased_with_start_is_a_409_naming_its_state(api):
    submitted = submit(api)
    api.post("/api/lease", {"start": True})
    answer = api.post(f"/api/runs/{submitted['id']}/start")
    assert (answer.status, answer.body["code"], answer.body["current_state"]) == (
        409, "not_allowed", "running")


def test_lease_with_start_takes_several_in_lease_order(api):
    submit(api, priority=1)
    urgent = submit(api, priority=9)
    answer = api.post("/api/lease", {"limit": 5, "start": True})
    assert [run["state"] for run in answer.body["runs"]] == ["running", "running"]
    assert answer.body["runs"][0]["id"] == urgent["id"]


def test_lease_without_start_still_only_leases(api):
    submit(api)
    (run,) = api.post("/api/lease", {"start": False}).body["runs"]
    assert run["state"] == "leased"


def test_lease_with_start_and_nothing_ready_returns_no_runs(api):
    assert api.post("/api/lease", {"start": True}).body == {"runs": []}


def test_lease_with_start_skips_runs_that_are_not_ready(api):
    submitted = submit(api)
    services.cancel(submitted["id"], actor="olga")
    assert api.post("/api/lease", {"start": True}).body == {"runs": []}
    assert Run.objects.get(pk=submitted["id"]).state == RunState.CANCELED


@pytest.mark.parametrize("start", ["yes", 1, None])
def test_start_must_be_a_boolean(api, start):
    submit(api)
    answer = api.post("/api/lease", {"start": start})
    assert (answer.status, answer.body["code"]) == (400, "invalid")
    assert Run.objects.get().state == RunState.READY


def test_lease_with_start_is_refused_like_a_lease(api, anonymous):
    submit(api)
    assert anonymous.post("/api/lease", {"start": True}).status == 401
    mismatch = api.post("/api/lease", {"start": True, "executor": "exec-7"})
    assert (mismatch.status, mismatch.body["code"], mismatch.body["field"]) == (
        403, "executor_mismatch", "executor")
    assert Run.objects.get().state == RunState.READY


def test_the_openapi_document_states_the_start_flag(api):
    document = api.get("/api/openapi.json").body
    lease_in = document["components"]["schemas"]["LeaseIn"]["properties"]["start"]
    assert (lease_in["type"], lease_in["default"]) == ("boolean", False)
    links = document["paths"]["/api/lease"]["post"]["responses"]["200"]["links"]
    assert {"startRun", "heartbeatRun", "completeRun", "failRun"} <= set(links)
