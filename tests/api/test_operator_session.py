"""Operators use the read and cancel endpoints with their dashboard session (and CSRF)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from runs.models import Run
from tests.api.conftest import ApiClient, csrf_headers, running

pytestmark = pytest.mark.django_db


def test_an_operator_reads_runs_with_a_session(operator_api, make_run):
    run = make_run("ready")
    assert operator_api.get("/api/runs").body["items"][0]["id"] == str(run.pk)
    assert operator_api.get(f"/api/runs/{run.pk}").status == 200


def test_an_operator_cancels_with_the_csrf_header_and_is_the_recorded_actor(operator_api,
                                                                           make_run):
    run = make_run("ready")
    answer = operator_api.post(f"/api/runs/{run.pk}/cancel", {"reason": "duplicate"},
                               **csrf_headers(operator_api))
    assert (answer.status, answer.body["state"]) == (200, "canceled")
    last = Run.objects.get(pk=run.pk).transitions.last()
    assert (last.actor, last.reason) == ("olga", "duplicate")


def test_a_session_post_without_csrf_is_a_403_and_cancels_nothing(operator_api, make_run):
    run = make_run("ready")
    answer = operator_api.post(f"/api/runs/{run.pk}/cancel", {})
    assert (answer.status, answer.body["code"]) == (403, "csrf_failed")
    assert Run.objects.get(pk=run.pk).state == "ready"


def test_a_user_without_the_cancel_permission_gets_a_403(make_run):
    viewer = User.objects.create_user("vic", password="pw-vic-123")
    client = ApiClient(Client(enforce_csrf_checks=True))
    client.client.force_login(viewer)
    run = make_run("ready")
    assert client.get(f"/api/runs/{run.pk}").status == 200  # watching is fine
    answer = client.post(f"/api/runs/{run.pk}/cancel", {}, **csrf_headers(client))
    assert (answer.status, answer.body["code"]) == (403, "forbidden")
    assert "runs.cancel_run" in answer.body["message"]
    assert Run.objects.get(pk=run.pk).state == "ready"


def test_canceling_a_finished_run_is_a_409_with_its_state(operator_api, make_run):
    run = make_run("completed")
    answer = operator_api.post(f"/api/runs/{run.pk}/cancel", {}, **csrf_headers(operator_api))
    assert (answer.status, answer.body["code"], answer.body["current_state"]) == (
        409, "not_allowed", "completed")


def test_operators_cannot_use_executor_endpoints_or_submit(operator_api):
    headers = csrf_headers(operator_api)
    assert operator_api.post("/api/lease", {}, **headers).status == 401
    assert operator_api.post("/api/runs", {"name": "x"}, **headers).status == 401


def test_a_token_may_cancel_and_is_recorded_as_its_executor(api, make_run):
    run = make_run("scheduled")
    answer = api.post(f"/api/runs/{run.pk}/cancel", {"reason": "not needed"})
    assert (answer.status, answer.body["state"]) == (200, "canceled")
    assert Run.objects.get(pk=run.pk).transitions.last().actor == "exec-1"


def test_canceling_a_running_run_tells_its_executor_to_stop(api, operator_api):
    run = running(api)
    operator_api.post(f"/api/runs/{run['id']}/cancel", {}, **csrf_headers(operator_api))
    answer = api.post(f"/api/runs/{run['id']}/heartbeat", {})
    assert (answer.status, answer.body["code"], answer.body["stop"]) == (409, "canceled", True)


def test_replenishing_resumes_a_budget_suspended_run(api, operator_api):
    run = running(api, budget={"tokens": 10})
    api.post(f"/api/runs/{run['id']}/heartbeat", {"consumed": {"tokens": 11}})
    answer = operator_api.post(f"/api/runs/{run['id']}/replenish", {"budget": {"tokens": 100}},
                               **csrf_headers(operator_api))
    assert (answer.status, answer.body["state"], answer.body["budget"]) == (
        200, "ready", {"tokens": 100})


def test_replenishing_never_lowers_a_budget_a_409_since_it_depends_on_the_run(api):
    run = running(api, budget={"tokens": 10})
    answer = api.post(f"/api/runs/{run['id']}/replenish", {"budget": {"tokens": 5}})
    assert (answer.status, answer.body["code"], answer.body["field"],
            answer.body["current_state"]) == (409, "not_allowed", "budget", "running")
    assert api.get(f"/api/runs/{run['id']}").body["budget"] == {"tokens": 10}
