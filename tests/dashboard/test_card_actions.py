"""`POST /runs/<id>/actions/<name>/`: every action's 200/403/404/409, CSRF, no-JS forms."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from runs.actions import ACTIONS
from runs.models import Run
from runs.states import RunState
from tests.dashboard.conftest import ensure_operators_group

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}

# Each action: a state it applies to, the state (or kind of run) it leads to, a state it
# does not apply to.
CASES = {
    "cancel": (RunState.RUNNING, RunState.CANCELED, RunState.COMPLETED),
    "suspend": (RunState.RUNNING, RunState.SUSPENDED, RunState.READY),
    "resume": (RunState.SUSPENDED, RunState.READY, RunState.RUNNING),
    "retry": (RunState.RETRY_WAIT, RunState.READY, RunState.FAILED),
    "rerun": (RunState.FAILED, RunState.READY, RunState.RUNNING),
}


def url(run_id, name: str) -> str:
    return f"/runs/{run_id}/actions/{name}/"


def test_every_registered_action_is_covered():
    assert set(CASES) == set(ACTIONS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_operator_action_answers_200_with_the_run(client, operator, make_run, name):
    start, end, _ = CASES[name]
    run = make_run(start)
    client.force_login(operator)
    response = client.post(url(run.pk, name), {"reason": "because"}, **JSON)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True and body["run"]["state"] == end
    if name == "rerun":
        assert body["run"]["rerun_of"] == str(run.pk)
        assert Run.objects.get(pk=run.pk).state == start  # a finished run is never reopened
    else:
        assert body["run"]["id"] == str(run.pk)
        assert Run.objects.get(pk=run.pk).state == end
        assert run.transitions.last().actor == "olga"


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_action_the_state_does_not_allow_answers_409_with_the_current_state(
        client, operator, make_run, name):
    _, _, wrong = CASES[name]
    run = make_run(wrong)
    client.force_login(operator)
    response = client.post(url(run.pk, name), **JSON)
    assert response.status_code == 409
    body = response.json()
    assert body["ok"] is False and body["current_state"] == wrong and body["message"]
    assert Run.objects.get(pk=run.pk).version == run.version


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_action_without_its_permission_answers_403(client, viewer, make_run, name):
    start, _, _ = CASES[name]
    run = make_run(start)
    client.force_login(viewer)
    response = client.post(url(run.pk, name), **JSON)
    assert response.status_code == 403
    assert response.json() | {"message": ""} == {
        "ok": False, "code": "forbidden", "message": "", "current_state": start}
    assert Run.objects.get(pk=run.pk).version == run.version


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_action_on_an_unknown_run_answers_404(client, operator, name):
    client.force_login(operator)
    response = client.post(url(uuid.uuid4(), name), **JSON)
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_an_unknown_action_answers_404(client, operator, make_run):
    run = make_run(RunState.RUNNING)
    client.force_login(operator)
    response = client.post(url(run.pk, "explode"), **JSON)
    assert response.status_code == 404 and response.json()["current_state"] == "running"


def test_one_permission_allows_that_action_only(client, viewer, make_run):
    viewer.user_permissions.add(Permission.objects.get(codename="cancel_run"))
    run = make_run(RunState.RUNNING)
    client.force_login(viewer)
    assert client.post(url(run.pk, "suspend"), **JSON).status_code == 403
    assert client.post(url(run.pk, "cancel"), **JSON).status_code == 200


def test_the_data_migration_creates_the_operators_group_and_missing_permissions():
    Group.objects.filter(name="Run operators").delete()
    Permission.objects.filter(content_type__app_label="runs").delete()
    ensure_operators_group()  # runs the migration's function, as on a fresh database
    group = Group.objects.get(name="Run operators")
    assert sorted(group.permissions.values_list("codename", flat=True)) == [
        "cancel_run", "rerun_run", "resume_run", "retry_run", "suspend_run"]


def test_anonymous_users_cannot_act(client, make_run):
    run = make_run(RunState.RUNNING)
    assert client.post(url(run.pk, "cancel"), **JSON).status_code == 403
    response = client.post(url(run.pk, "cancel"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert Run.objects.get(pk=run.pk).state == RunState.RUNNING


def test_actions_need_post(client, operator, make_run):
    run = make_run(RunState.RUNNING)
    client.force_login(operator)
    assert client.get(url(run.pk, "cancel")).status_code == 405


def test_csrf_is_enforced(operator, make_run):
    run = make_run(RunState.RUNNING)
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(url(run.pk, "cancel"), **JSON).status_code == 403
    assert Run.objects.get(pk=run.pk).state == RunState.RUNNING
    client.get("/")  # the board sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post(url(run.pk, "cancel"), HTTP_X_CSRFTOKEN=token, **JSON)
    assert response.status_code == 200 and Run.objects.get(pk=run.pk).state == "canceled"


def test_a_forged_post_from_a_viewer_is_refused(viewer, make_run):
    run = make_run(RunState.RUNNING)
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    client.get("/")
    token = client.cookies["csrftoken"].value
    response = client.post(url(run.pk, "cancel"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 403
    assert Run.objects.get(pk=run.pk).state == RunState.RUNNING


def test_a_form_post_redirects_back_with_a_message(client, operator, make_run):
    run = make_run(RunState.RUNNING, name="etl")
    client.force_login(operator)
    response = client.post(url(run.pk, "cancel"), {"next": "/?queue=default"}, follow=True)
    assert response.redirect_chain[0] == ("/?queue=default", 302)
    assert any("canceled" in str(m) for m in response.context["messages"])
    again = client.post(url(run.pk, "cancel"), {"next": "https://evil.example/"}, follow=True)
    assert again.redirect_chain[0] == ("/", 302)
    assert any("canceled" in str(m) and "cannot" in str(m) for m in again.context["messages"])
