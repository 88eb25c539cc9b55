"""Top errors for a range, and the run list's time range and error filters behind its links."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from runs.history.errors import top_errors
from runs.listing import RunFilter, filtered_runs
from runs.models import Run
from runs.states import RunState


@pytest.fixture
def failures(make_run):
    now = timezone.now()
    for index in range(5):
        make_run(RunState.FAILED, last_error=f"Timeout: upstream\nTraceback {index}")
    for _ in range(3):
        make_run(RunState.RETRY_WAIT, last_error="KeyError: 'id'")
    make_run(RunState.FAILED, last_error="Timeout: upstream",
             state_changed_at=now - timedelta(hours=3))  # outside the last hour
    make_run(RunState.COMPLETED, last_error="KeyError: 'id'")  # not an error state
    return now


@pytest.mark.django_db
def test_top_errors_count_first_lines_of_failed_and_retrying_runs_in_the_range(failures):
    found = top_errors(since=failures - timedelta(hours=1), until=failures + timedelta(1))
    assert [(e["line"], e["count"], e["failed"], e["retry_wait"]) for e in found] == [
        ("Timeout: upstream", 5, 5, 0), ("KeyError: 'id'", 3, 0, 3)]
    brute = Counter(run.last_error.splitlines()[0] for run in Run.objects.filter(
        state__in=("failed", "retry_wait"), state_changed_at__gte=failures - timedelta(days=1)))
    wide = top_errors(since=failures - timedelta(days=1), until=failures + timedelta(1))
    assert {e["line"]: e["count"] for e in wide} == dict(brute)


@pytest.mark.django_db
def test_each_top_error_links_to_the_run_list_filtered_to_it(client, failures):
    User.objects.create_user("ann", password="pw")
    client.login(username="ann", password="pw")
    page = client.get("/runs/errors/?range=1h")
    assert page.status_code == 200
    link = next(e["url"] for e in page.context["errors"] if e["line"] == "Timeout: upstream")
    listed = client.get(link)
    assert listed.status_code == 200
    shown = listed.context["page"].runs
    assert len(shown) == 5 and all(r.last_error.startswith("Timeout: upstream") for r in shown)


@pytest.mark.django_db
def test_the_run_list_filters_by_changed_and_finished_between(make_run, now):
    old = make_run(RunState.COMPLETED, state_changed_at=now - timedelta(hours=5),
                   finished_at=now - timedelta(hours=5))
    new = make_run(RunState.COMPLETED, state_changed_at=now, finished_at=now)
    start = (now - timedelta(hours=1)).isoformat()
    assert list(filtered_runs(RunFilter.from_query({"changed_after": start}))) == [new]
    assert list(filtered_runs(RunFilter.from_query({"finished_before": start}))) == [old]
    bad = RunFilter.from_query({"finished_after": "yesterday"})
    assert bad.finished_after is None and "not an ISO time" in bad.errors[0]
    assert RunFilter.from_query({"changed_after": start}).as_query() == {
        "changed_after": RunFilter.from_query({"changed_after": start}).changed_after.isoformat()}
