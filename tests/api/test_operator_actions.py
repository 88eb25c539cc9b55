"""Suspend, resume, retry now and rerun over the API: the board's actions (`runs.actions`),
with its permissions, CSRF rule, error shape and audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from websockets.sync import client as websockets_sync

from runs.actions import ACTIONS
from runs.models import Run
from runs.tokens import ExecutorToken
from tests.api.conftest import ApiClient, csrf_headers, running
from tests.api.live_servers import (
    delta_for,
    receive_until,
    server_env,
    session_cookie,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.django_db


def operator_with(*actions: str) -> ApiClient:
    """A logged-in session holding exactly the permissions of `actions` (CSRF enforced)."""
    user = User.objects.create_user(f"op-{'-'.join(actions) or 'none'}", password="pw-op-123")
    for name in actions:
        user.user_permissions.add(Permission.objects.get(
            codename=ACTIONS[name].permission.removeprefix("runs.")))
    client = ApiClient(Client(enforce_csrf_checks=True))
    client.client.force_login(user)
    return client


def act(client: ApiClient, run_id: Any, name: str, body: Any = None) -> Any:
    return client.post(f"/api/runs/{run_id}/{name}", body, **csrf_headers(client))


# -- allowed: the move happens, recorded with the operator as actor ------------------------


def test_an_operator_suspends_a_running_run_and_its_executor_is_told_to_stop(api):
    run = running(api)
    answer = act(operator_with("suspend"), run["id"], "suspend", {"reason": "maintenance"})
    assert (answer.status, answer.body["state"], answer.body["suspended_by"]) == (
        200, "suspended", "operator")
    last = Run.objects.get(pk=run["id"]).transitions.last()
    assert (last.to_state, last.actor, last.reason) == ("suspended", "op-suspend", "maintenance")
    beat = api.post(f"/api/runs/{run['id']}/heartbeat", {})
    assert (beat.status, beat.body["stop"]) == (409, True)


def test_a_suspension_without_a_reason_records_who_suspended_it(api):
    run = running(api)
    answer = act(operator_with("suspend"), run["id"], "suspend")
    assert answer.status == 200
    assert Run.objects.get(pk=run["id"]).suspend_reason == "suspended by op-suspend"


def test_an_operator_resumes_a_suspended_run(make_run):
    run = make_run("suspended", suspended_by="operator", suspend_reason="maintenance")
    answer = act(operator_with("resume"), run.pk, "resume")
    assert (answer.status, answer.body["state"]) == (200, "ready")
    assert Run.objects.get(pk=run.pk).transitions.last().actor == "op-resume"


def test_retry_now_skips_the_backoff(api):
    run = running(api)
    waiting = api.post(f"/api/runs/{run['id']}/fail", {"error": "flaky"})
    assert waiting.body["state"] == "retry_wait"
    answer = act(operator_with("retry"), run["id"], "retry")
    assert (answer.status, answer.body["state"]) == (200, "ready")
    assert Run.objects.get(pk=run["id"]).transitions.last().reason == "retry now (backoff skipped)"


def test_rerun_answers_201_with_a_new_run_linked_to_the_finished_one(make_run):
    old = make_run("failed", payload={"to": "ops"}, priority=7)
    answer = act(operator_with("rerun"), old.pk, "rerun")
    assert answer.status == 201
    new = Run.objects.get(pk=answer.body["id"])
    assert (new.rerun_of_id, new.state, new.payload, new.priority) == (
        old.pk, "ready", {"to": "ops"}, 7)
    assert answer.body["rerun_of"] == str(old.pk)
    assert new.transitions.get().actor == "op-rerun"


def test_a_token_may_act_and_is_recorded_as_its_executor(api, make_run):
    run = make_run("suspended", suspended_by="operator")
    answer = api.post(f"/api/runs/{run.pk}/resume")
    assert answer.status == 200
    assert Run.objects.get(pk=run.pk).transitions.last().actor == "exec-1"


# -- refused: permission (403), CSRF (403), stale (409), unknown (404) -----------------------


@pytest.mark.parametrize(("name", "state", "fields"), [
    ("suspend", "running", {}),
    ("resume", "suspended", {"suspended_by": "operator"}),
    ("retry", "retry_wait", {"attempts": 1}),
    ("rerun", "completed", {}),
])
def test_without_the_permission_it_is_a_403_and_nothing_changes(make_run, name, state, fields):
    run = make_run(state, **fields)
    others = [other for other in ACTIONS if other != name]
    answer = act(operator_with(*others), run.pk, name)
    assert (answer.status, answer.body["code"]) == (403, "forbidden")
    assert ACTIONS[name].permission in answer.body["message"]
    assert Run.objects.get(pk=run.pk).version == run.version
    assert Run.objects.count() == 1


@pytest.mark.parametrize("name", ["suspend", "resume", "retry", "rerun"])
def test_a_session_post_without_the_csrf_header_is_a_403(make_run, name):
    run = make_run("running")
    client = operator_with(name)
    answer = client.post(f"/api/runs/{run.pk}/{name}")
    assert (answer.status, answer.body["code"]) == (403, "csrf_failed")


@pytest.mark.parametrize(("name", "state"), [
    ("suspend", "ready"), ("suspend", "completed"),
    ("resume", "running"), ("resume", "canceled"),
    ("retry", "ready"), ("retry", "failed"),
    ("rerun", "running"), ("rerun", "suspended"),
])
def test_an_action_the_state_does_not_allow_is_a_409_with_the_current_state(
        make_run, name, state):
    run = make_run(state)
    answer = act(operator_with(name), run.pk, name)
    assert (answer.status, answer.body["code"], answer.body["current_state"]) == (
        409, "not_allowed", state)
    assert Run.objects.get(pk=run.pk).version == run.version
    assert Run.objects.count() == 1


def test_retry_now_is_a_409_when_no_attempt_remains(make_run):
    run = make_run("retry_wait", attempts=3, max_attempts=3)
    answer = act(operator_with("retry"), run.pk, "retry")
    assert (answer.status, answer.body["code"], answer.body["current_state"]) == (
        409, "not_allowed", "retry_wait")


def test_an_unknown_run_is_a_404(api):
    answer = api.post("/api/runs/01a2203d-1c3e-7f00-8000-000000000000/suspend", {})
    assert (answer.status, answer.body["code"]) == (404, "not_found")


def test_unknown_fields_are_a_400(api):
    run = running(api)
    answer = api.post(f"/api/runs/{run['id']}/suspend", {"reason": "x", "until": "never"})
    assert (answer.status, answer.body["code"], answer.body["field"]) == (400, "invalid", "until")


# -- the board sees the change -------------------------------------------------------------


@pytest.fixture
def board_server() -> Iterator[str]:
    server, url = start_server(server_env(redis=False))
    try:
        yield url
    finally:
        stop_server(server)


@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_the_board_sees_every_api_action(board_server):
    url = board_server
    _, token = ExecutorToken.issue("exec-live")
    cookie = session_cookie()
    ws_url = url.replace("http://", "ws://") + "/ws/board/"
    with websockets_sync.connect(ws_url, additional_headers={"Cookie": cookie, "Origin": url},
                                 open_timeout=20) as socket, \
            httpx.Client(base_url=f"{url}/api/", timeout=10,
                         headers={"Authorization": f"Bearer {token}"}) as api:
        receive_until(socket, lambda frame: frame.get("type") == "snapshot")

        def post(path: str, body: Any = None) -> dict[str, Any]:
            answer = api.post(path, json=body)
            assert answer.is_success, answer.text
            return answer.json()

        run_id = post("runs", {"name": "board-sees", "queue": "live"})["id"]
        (leased,) = post("lease", {"queues": ["live"]})["runs"]
        assert leased["id"] == run_id
        post(f"runs/{run_id}/start")
        receive_until(socket, delta_for(run_id, "running"))

        assert post(f"runs/{run_id}/suspend", {"reason": "board"})["state"] == "suspended"
        receive_until(socket, delta_for(run_id, "suspended"))
        assert post(f"runs/{run_id}/resume")["state"] == "ready"
        receive_until(socket, delta_for(run_id, "ready"))

        post("lease", {"queues": ["live"]})
        post(f"runs/{run_id}/start")
        assert post(f"runs/{run_id}/fail", {"error": "flaky"})["state"] == "retry_wait"
        receive_until(socket, delta_for(run_id, "retry_wait"))
        assert post(f"runs/{run_id}/retry")["state"] == "ready"
        receive_until(socket, delta_for(run_id, "ready"))

        post(f"runs/{run_id}/cancel")
        rerun = post(f"runs/{run_id}/rerun")
        frame = receive_until(socket, delta_for(rerun["id"], "ready"))
        event = next(e for e in frame["deltas"] if e["id"] == rerun["id"])
        assert event["run"]["rerun_of"] == run_id
