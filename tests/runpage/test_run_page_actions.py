"""The run page's buttons, end to end through the board's action endpoint."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from runs.models import Run
from runs.states import RunState
from tests.runpage.html import parse

pytestmark = pytest.mark.django_db


def action_form(client: Client, run: Run, name: str):
    html = parse(client.get(reverse("run-detail", args=[run.pk])).content)
    return html.find("form", class_="run-action", data_action=name)


def test_the_cancel_button_posts_a_form_and_comes_back_to_the_run_page(operator, make_run):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    run = make_run(RunState.RUNNING)
    form = action_form(client, run, "cancel")
    fields = {i.attrs["name"]: i.attrs.get("value", "") for i in form.find_all("input")}
    fields["reason"] = "wrong input"
    response = client.post(form.attrs["action"], fields)
    assert response.status_code == 302
    assert response["Location"] == reverse("run-detail", args=[run.pk])
    assert Run.objects.get(pk=run.pk).state == "canceled"
    assert Run.objects.get(pk=run.pk).transitions.last().reason == "wrong input"
    assert any("canceled" in str(m) for m in get_messages(response.wsgi_request))


def test_the_page_script_gets_json_and_the_refresh_shows_the_move(operator_client, make_run):
    run = make_run(RunState.RUNNING)
    form = action_form(operator_client, run, "suspend")
    answer = operator_client.post(form.attrs["action"], {"reason": "maintenance"},
                                  headers={"Accept": "application/json",
                                           "X-Requested-With": "XMLHttpRequest"})
    assert answer.status_code == 200
    assert answer.json()["ok"] is True and answer.json()["run"]["state"] == "suspended"
    live = operator_client.get(reverse("run-live", args=[run.pk])).json()
    assert live["answer"]["text"] == "Suspended by olga: maintenance"
    assert live["actions"] == ["cancel", "resume"]


def test_a_button_that_no_longer_applies_gets_a_409_with_the_current_state(operator_client,
                                                                          make_run):
    run = make_run(RunState.RUNNING)
    form = action_form(operator_client, run, "suspend")
    Run.objects.get(pk=run.pk).transition_to(RunState.CANCELED, actor="bob")
    answer = operator_client.post(form.attrs["action"], {"reason": "late"},
                                  headers={"Accept": "application/json"})
    assert answer.status_code == 409
    assert answer.json()["ok"] is False and answer.json()["current_state"] == "canceled"


def test_a_watcher_cannot_act_even_by_forging_the_post(watcher_client, make_run):
    run = make_run(RunState.RUNNING)
    answer = watcher_client.post(f"/runs/{run.pk}/actions/cancel/",
                                 headers={"Accept": "application/json"})
    assert answer.status_code == 403
    assert Run.objects.get(pk=run.pk).state == "running"
