"""The Transition admin is history: it can be read, never added, changed or deleted."""

from __future__ import annotations

import pytest
from django.urls import reverse

from runs import services
from runs.models import Transition
from tests.runpage.html import parse

pytestmark = pytest.mark.django_db


@pytest.fixture
def transition(db) -> Transition:
    run = services.submit(name="etl")
    services.cancel(run.pk, actor="bob", reason="dup")
    return Transition.objects.filter(run=run).last()


def test_the_transition_list_shows_the_newest_first(admin_client_, transition):
    html = parse(admin_client_.get(reverse("admin:runs_transition_changelist")).content)
    rows = html.find(id="result_list").find("tbody").find_all("tr")
    assert len(rows) == 2
    assert "bob" in rows[0].text


def test_adding_a_transition_is_refused(admin_client_):
    response = admin_client_.post(reverse("admin:runs_transition_add"), {"to_state": "ready"})
    assert response.status_code == 403
    assert not Transition.objects.exists()


def test_changing_a_transition_is_refused(admin_client_, transition):
    url = reverse("admin:runs_transition_change", args=[transition.pk])
    page = admin_client_.get(url)
    assert page.status_code == 200  # readable
    assert parse(page.content).find("input", name="reason") is None
    response = admin_client_.post(url, {"reason": "rewritten", "actor": "mallory",
                                        "to_state": "completed"})
    assert response.status_code == 403
    transition.refresh_from_db()
    assert (transition.reason, transition.actor, transition.to_state) == ("dup", "bob",
                                                                          "canceled")


def test_deleting_a_transition_is_refused(admin_client_, transition):
    url = reverse("admin:runs_transition_delete", args=[transition.pk])
    assert admin_client_.post(url, {"post": "yes"}).status_code == 403
    response = admin_client_.post(reverse("admin:runs_transition_changelist"), {
        "action": "delete_selected", "_selected_action": [transition.pk], "post": "yes"})
    assert Transition.objects.filter(pk=transition.pk).exists()
    assert response.status_code in (200, 302)


def test_transitions_can_be_searched_by_run_id(admin_client_, transition):
    url = reverse("admin:runs_transition_changelist")
    html = parse(admin_client_.get(url, {"q": transition.run.short_id}).content)
    assert len(html.find(id="result_list").find("tbody").find_all("tr")) == 2
