"""The Executors page: lease owners now, last heartbeat, runs in hand, finished and failed in
the last hour from the audit trail, and the stale flag."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client

from runs.executors import executor_overview
from runs.models import Transition
from runs.states import RunState
from tests.ops.conftest import queries_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(make_run, now):
    """exec-1 works two runs and heartbeats; exec-2 went quiet 25 s ago (30 s leases)."""
    make_run("running", lease_owner="exec-1", heartbeat_at=now - timedelta(seconds=3),
             state_changed_at=now - timedelta(seconds=40))
    make_run("leased", lease_owner="exec-1", state_changed_at=now - timedelta(seconds=1))
    make_run("running", lease_owner="exec-2", heartbeat_at=now - timedelta(seconds=25),
             state_changed_at=now - timedelta(seconds=60),
             lease_expires_at=now + timedelta(seconds=5))
    done = [make_run("completed") for _ in range(3)] + [make_run("failed")]
    audit = Transition.objects.bulk_create
    audit([
        Transition(run=done[0], from_state="running", to_state="completed", actor="exec-1",
                   at=now - timedelta(minutes=5)),
        Transition(run=done[1], from_state="running", to_state="completed", actor="exec-1",
                   at=now - timedelta(minutes=59)),
        # Outside the hour, and another executor's: neither counts for exec-1.
        Transition(run=done[2], from_state="running", to_state="completed", actor="exec-1",
                   at=now - timedelta(minutes=61)),
        Transition(run=done[3], from_state="running", to_state="failed", actor="exec-2",
                   at=now - timedelta(minutes=10)),
    ])
    make_run("ready")  # nobody holds it
    return now


def test_each_lease_owner_with_what_it_holds_and_did_in_the_last_hour(fleet):
    overview = executor_overview(now=fleet)

    one, two = overview.executors
    assert (one.name, one.running, one.leased, one.in_hand) == ("exec-1", 1, 1, 2)
    assert (one.completed_hour, one.failed_hour) == (2, 0)
    assert one.last_heartbeat_at == fleet - timedelta(seconds=3)
    assert one.last_contact_at == fleet - timedelta(seconds=1)  # the lease it just took
    assert (two.name, two.in_hand, two.completed_hour, two.failed_hour) == ("exec-2", 1, 0, 1)
    assert two.next_expiry_at == fleet + timedelta(seconds=5)


def test_stale_means_two_heartbeat_intervals_without_contact(fleet):
    overview = executor_overview(now=fleet)

    one, two = overview.executors
    assert one.heartbeat_interval == timedelta(seconds=10)  # a third of a 30 s lease
    assert not one.is_stale(fleet)
    assert two.is_stale(fleet)  # 25 s > two beats of 10 s
    assert overview.stale_count == 1


def test_the_page_shows_them_with_times_to_the_second_and_the_stale_badge(fleet, watcher_client):
    html = watcher_client.get("/executors/").content.decode()

    assert '<tr class="" data-executor="exec-1">' in html
    assert '<tr class="is-stale" data-executor="exec-2">' in html
    assert "1 stale" in html
    assert "Stale: nothing heard from it" in html  # what it means, for readers without hover
    assert 'aria-describedby="stale-help"' in html
    exec_1 = html.split('data-executor="exec-1"')[1].split("</tr>")[0]
    assert ">3 s ago</time>" in exec_1 and " UTC\"" in exec_1
    assert "2 completed" in exec_1 and "0 failed" in exec_1
    assert "1 running" in exec_1 and "+ 1 leased" in exec_1


def test_no_lease_holder_says_so(db, watcher_client, make_run):
    make_run("ready")

    html = watcher_client.get("/executors/").content.decode()

    assert "No executor holds a lease now." in html


def test_the_page_needs_a_login():
    answer = Client().get("/executors/")

    assert answer.status_code == 302 and answer["Location"].startswith("/login/")


def test_the_page_costs_the_same_queries_for_2_executors_as_for_30(fleet, watcher_client,
                                                                   make_run):
    few = queries_for(watcher_client, "/executors/")
    for index in range(28):
        make_run(RunState.RUNNING, lease_owner=f"exec-{index + 10}")
    assert queries_for(watcher_client, "/executors/") == few


@pytest.mark.postgres
def test_on_postgresql_both_reads_use_their_partial_indexes(fleet):
    """The planner picks a sequential scan on tiny tables; forbid it to see the index fits."""
    from runs.executors import _finished_since
    from runs.models import Run

    held = Run.objects.filter(state__in=(RunState.LEASED, RunState.RUNNING)).values(
        "lease_owner").order_by("lease_owner")
    finished = Transition.objects.filter(actor__in=["exec-1"], to_state__in=("completed",
                                                                             "failed"),
                                         at__gte=fleet - timedelta(hours=1))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    # Either partial index on leased/running runs serves it (run_lease_holder or
    # run_lease_expiry: the planner's pick on a tiny table); what matters is no scan of runs.
    plan = held.explain()
    assert "Index" in plan and "Seq Scan" not in plan, plan
    assert "transition_actor_finished" in finished.explain()
    assert _finished_since(["exec-1"], since=fleet - timedelta(hours=1)) == {
        ("exec-1", "completed"): 2}
