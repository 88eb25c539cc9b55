"""Bulk actions by filter: preview counts, a frozen set, per-run outcomes, permissions, the cap."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from runs import bulk, services
from runs.bulk_models import BulkOperation
from runs.models import Run
from runs.states import RunState
from tests.runpage.conftest import grant
from tests.runpage.html import parse

pytestmark = pytest.mark.django_db


def preview(client, action: str, **filters):
    return client.post(reverse("run-bulk"), {"action": action, **filters})


def operation_of(response) -> BulkOperation:
    assert response.status_code == 302, response.content[:500]
    return BulkOperation.objects.get(pk=response["Location"].rstrip("/").split("/")[-1])


def states_of(runs) -> list[str]:
    return [Run.objects.get(pk=run.pk).state for run in runs]


def test_the_preview_counts_eligible_and_skipped_runs_by_reason(operator_client, make_run):
    eligible = [make_run(RunState.READY, queue="etl") for _ in range(3)]
    eligible.append(make_run(RunState.RUNNING, queue="etl"))
    for _ in range(2):
        make_run(RunState.COMPLETED, queue="etl")
    make_run(RunState.CANCELED, queue="etl")
    make_run(RunState.READY, queue="emails")  # outside the filter
    operation = operation_of(preview(operator_client, "cancel", queue="etl", reason="bad deploy"))
    assert sorted(operation.run_ids) == sorted(str(r.pk) for r in eligible)
    assert operation.skipped == [["already completed", "2"], ["already canceled", "1"]]
    html = parse(operator_client.get(reverse("run-bulk-operation", args=[operation.pk])).content)
    assert html.find(id="eligible").text.startswith("4 runs matching queue etl will be canceled")
    assert [li.text for li in html.find(id="skipped").find_all("li")] == [
        "2 skipped: already completed", "1 skipped: already canceled"]
    assert states_of(eligible) == ["ready", "ready", "ready", "running"]  # nothing happened yet


def test_the_preview_explains_runs_the_action_does_not_apply_to(operator_client, make_run):
    make_run(RunState.RUNNING)
    make_run(RunState.READY)
    make_run(RunState.READY)
    operation = operation_of(preview(operator_client, "suspend"))
    assert len(operation.run_ids) == 1
    assert operation.skipped == [["cannot suspend a ready run", "2"]]


def test_confirm_acts_on_exactly_the_frozen_ids(operator_client, make_run):
    frozen = [make_run(RunState.READY, queue="etl") for _ in range(4)]
    running = make_run(RunState.RUNNING, queue="etl")
    frozen.append(running)
    operation = operation_of(preview(operator_client, "cancel", queue="etl"))
    # Between preview and confirm: new matching runs appear, one frozen run finishes.
    late = [services.submit(name="late", queue="etl") for _ in range(2)]
    services.complete(running.pk, executor="exec-1", result={})
    response = operator_client.post(reverse("run-bulk-operation", args=[operation.pk]))
    assert response.status_code == 302
    assert states_of(frozen) == ["canceled"] * 4 + ["completed"]
    assert states_of(late) == ["ready", "ready"]  # never touched
    operation.refresh_from_db()
    assert operation.status == "done"
    assert operation.outcomes[str(running.pk)] == "skipped: already completed"
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "4 canceled; 1 skipped: already completed"]
    html = parse(operator_client.get(reverse("run-bulk-operation", args=[operation.pk])).content)
    assert html.find(id="summary").text == "4 canceled; 1 skipped: already completed"
    rows = html.find(id="not-done").find_all("tr")
    assert [r.find_all("td")[1].text for r in rows] == ["skipped: already completed"]
    assert Run.objects.get(pk=frozen[0].pk).transitions.last().actor == "olga"


def test_outcomes_report_skips_from_the_preview_too(operator_client, make_run):
    make_run(RunState.FAILED)
    make_run(RunState.COMPLETED)
    make_run(RunState.READY)
    operation = operation_of(preview(operator_client, "rerun"))
    response = operator_client.post(reverse("run-bulk-operation", args=[operation.pk]))
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "2 rerun; 1 skipped: cannot rerun a ready run"]
    assert Run.objects.filter(rerun_of__isnull=False).count() == 2


@pytest.mark.parametrize(("action", "state", "after"), [
    ("suspend", RunState.RUNNING, "suspended"),
    ("resume", RunState.SUSPENDED, "ready"),
    ("retry", RunState.RETRY_WAIT, "ready"),
])
def test_each_bulk_action_goes_through_the_services(operator_client, make_run, action, state,
                                                    after):
    runs = [make_run(state) for _ in range(3)]
    operation = operation_of(preview(operator_client, action))
    operator_client.post(reverse("run-bulk-operation", args=[operation.pk]))
    assert states_of(runs) == [after] * 3


def test_a_confirm_never_acts_twice(operator_client, make_run):
    run = make_run(RunState.FAILED)
    operation = operation_of(preview(operator_client, "rerun"))
    operator_client.post(reverse("run-bulk-operation", args=[operation.pk]))
    response = operator_client.post(reverse("run-bulk-operation", args=[operation.pk]))
    assert any("already confirmed" in str(m) for m in get_messages(response.wsgi_request))
    assert Run.objects.filter(rerun_of=run).count() == 1


def test_outcomes_are_saved_chunk_by_chunk(operator, make_run, monkeypatch):
    runs = [make_run(RunState.READY) for _ in range(5)]
    operation = bulk.preview(user=operator, action_name="cancel", runs_filter=bulk.RunFilter())
    calls = []
    real = bulk.act_on_ids

    def dying_after_first_chunk(action, run_ids, **kwargs):
        calls.append(list(run_ids))
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real(action, run_ids, **kwargs)

    monkeypatch.setattr(bulk, "act_on_ids", dying_after_first_chunk)
    with pytest.raises(RuntimeError):
        bulk.execute(operation, user=operator, chunk_size=2)
    operation.refresh_from_db()
    assert list(operation.outcomes.values()) == ["canceled", "canceled"]
    assert sum(state == "canceled" for state in states_of(runs)) == 2


def test_a_watcher_cannot_preview(watcher_client, make_run):
    make_run()
    response = preview(watcher_client, "cancel")
    assert response.status_code == 403
    assert "permission to cancel" in parse(response.content).find(id="refusal").text
    assert not BulkOperation.objects.exists()


def test_a_permission_for_one_action_does_not_grant_another(client, watcher, make_run):
    make_run()
    client.force_login(grant(watcher, "suspend"))
    assert preview(client, "cancel").status_code == 403
    assert preview(client, "suspend").status_code == 302


def test_a_confirm_rechecks_the_permission(client, watcher, make_run):
    run = make_run()
    user = grant(watcher, "cancel")
    client.force_login(user)
    operation = operation_of(preview(client, "cancel"))
    user.user_permissions.clear()
    response = client.post(reverse("run-bulk-operation", args=[operation.pk]))
    assert response.status_code == 403
    assert Run.objects.get(pk=run.pk).state == "ready"


def test_nobody_else_can_see_or_confirm_an_operation(operator_client, make_run, django_user_model):
    make_run()
    operation = operation_of(preview(operator_client, "cancel"))
    other = django_user_model.objects.create_superuser("root", password="pw-root-123")
    client = Client()
    client.force_login(other)
    assert client.get(reverse("run-bulk-operation", args=[operation.pk])).status_code == 404
    assert client.post(reverse("run-bulk-operation", args=[operation.pk])).status_code == 404


def test_an_unknown_action_is_refused(operator_client):
    assert preview(operator_client, "delete").status_code == 400


def test_bulk_forms_need_a_csrf_token(operator, make_run):
    make_run()
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert preview(client, "cancel").status_code == 403


def test_above_the_cap_nothing_is_frozen_and_the_list_says_why(operator_client, make_run,
                                                               settings):
    settings.RUNBOARD = {**settings.RUNBOARD, "BULK_ACTION_CAP": 3}
    for _ in range(4):
        make_run(RunState.READY, queue="etl")
    response = preview(operator_client, "cancel", queue="etl")
    assert response.status_code == 302
    assert response["Location"] == reverse("run-list") + "?queue=etl"
    message = next(str(m) for m in get_messages(response.wsgi_request))
    assert message.startswith("More than 3 runs are eligible to cancel; the limit for one bulk "
                              "action is 3.")
    assert not BulkOperation.objects.exists()
    make_run(RunState.COMPLETED, queue="etl")  # ineligible runs do not count toward the cap
    Run.objects.filter(state="ready").first().transition_to("canceled")
    assert operation_of(preview(operator_client, "cancel", queue="etl")).matched == 3


def test_the_run_list_offers_bulk_actions_only_to_operators(operator_client, watcher_client,
                                                            make_run):
    make_run()
    form = parse(operator_client.get(reverse("run-list"), {"state": "ready"}).content).find(
        id="bulk-form")
    assert [o.attrs["value"] for o in form.find_all("option")] == list(bulk.BULK_ACTIONS)
    assert form.find("input", name="state").attrs["value"] == "ready"
    assert parse(watcher_client.get(reverse("run-list")).content).find(id="bulk-form") is None


def test_the_preview_reads_a_bounded_number_of_rows(operator, make_run,
                                                    django_assert_max_num_queries):
    for state in RunState:
        make_run(state)
    with django_assert_max_num_queries(1 + 3 + 1 + 2):  # ids, 3 ineligible counts, insert, perms
        bulk.preview(user=operator, action_name="cancel", runs_filter=bulk.RunFilter())


def test_an_interrupted_operation_can_be_continued_on_the_remaining_ids_only(
        operator_client, operator, make_run, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    runs = [make_run(RunState.READY) for _ in range(5)]
    operation = operation_of(preview(operator_client, "cancel"))
    real = bulk.act_on_ids
    calls = []

    def dying_after_first_chunk(action, run_ids, **kwargs):
        calls.append(list(run_ids))
        if len(calls) == 2:
            raise RuntimeError("the server restarted")
        return real(action, run_ids, **kwargs)

    monkeypatch.setattr(bulk, "act_on_ids", dying_after_first_chunk)
    with pytest.raises(RuntimeError):
        bulk.execute(operation, user=operator, chunk_size=2)
    monkeypatch.setattr(bulk, "act_on_ids", real)
    url = reverse("run-bulk-operation", args=[operation.pk])
    # Still fresh: a second confirm is refused, nothing acts twice.
    response = operator_client.post(url)
    assert any("already confirmed" in str(m) for m in get_messages(response.wsgi_request))
    assert parse(operator_client.get(url).content).find(id="continue-form") is None
    BulkOperation.objects.filter(pk=operation.pk).update(
        progressed_at=timezone.now() - bulk.STALLED_AFTER - timedelta(seconds=1))
    assert parse(operator_client.get(url).content).find(id="continue-form") is not None
    operator_client.post(url)
    operation.refresh_from_db()
    assert operation.status == "done"
    assert list(operation.outcomes.values()) == ["canceled"] * 5
    assert states_of(runs) == ["canceled"] * 5
    assert all(run.transitions.filter(to_state="canceled").count() == 1 for run in runs)


def test_an_invalid_filter_never_previews_against_every_run(operator_client, make_run):
    make_run(RunState.READY)
    response = preview(operator_client, "cancel", q="abc")  # not an id
    assert response.status_code == 400
    assert "not a run id" in parse(response.content).find(id="refusal").text
    assert not BulkOperation.objects.exists()


def test_the_run_list_offers_no_bulk_action_for_an_invalid_filter(operator_client, make_run):
    make_run(RunState.READY)
    html = parse(operator_client.get(reverse("run-list"), {"q": "abc"}).content)
    assert html.find(id="bulk-form") is None
    assert html.find(id="selection-form") is None


def test_selected_rows_are_previewed_alone(operator_client, make_run):
    chosen, other = make_run(RunState.READY), make_run(RunState.READY)
    response = operator_client.post(reverse("run-bulk"), {
        "action": "cancel", "scope": "selected", "ids": [str(chosen.pk)]})
    operation = operation_of(response)
    assert operation.run_ids == [str(chosen.pk)]
    assert str(other.pk) not in operation.run_ids


def test_an_empty_selection_selects_nothing(operator_client, make_run):
    make_run(RunState.READY)
    response = operator_client.post(reverse("run-bulk"), {"action": "cancel",
                                                          "scope": "selected"})
    assert response.status_code == 400
    assert not BulkOperation.objects.exists()


def test_a_rerun_preview_flags_runs_already_rerun_and_the_result_links_the_new_runs(
        operator_client, make_run):
    first, second = make_run(RunState.FAILED), make_run(RunState.FAILED)
    services.rerun(first.pk, actor="olga")
    operation = operation_of(preview(operator_client, "rerun", state="failed"))
    page = parse(operator_client.get(reverse("run-bulk-operation", args=[operation.pk])).content)
    assert page.find(id="already-rerun").find("strong").text == "1"
    operator_client.post(reverse("run-bulk-operation", args=[operation.pk]))
    page = parse(operator_client.get(reverse("run-bulk-operation", args=[operation.pk])).content)
    made = Run.objects.filter(rerun_of__in=[first.pk, second.pk],
                              created_at__gte=operation.created_at)
    links = [a.attrs["href"] for a in page.find(id="runs-made").find_all("a")]
    for run in made:
        assert reverse("run-detail", args=[run.pk]) in links
    assert made.count() == 2
