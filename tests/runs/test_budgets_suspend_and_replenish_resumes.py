"""Budgets: crossing a limit suspends the running run with the reason; replenish raises limits
and resumes at once; the clock resumes only the budget's suspensions, never an operator's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs import services
from runs.exceptions import InvalidInput, LeaseLost
from runs.models import Run
from runs.states import RunState


def running_with_budget(budget, executor="e1") -> Run:
    run = services.submit(name="llm-agent", budget=budget)
    services.lease(executor=executor)
    return services.start(run.pk, executor=executor)


@pytest.mark.django_db
def test_crossing_a_limit_suspends_the_run_with_the_reason():
    run = running_with_budget({"cost_cents": 500, "tokens": 100000})
    assert services.heartbeat(run.pk, executor="e1",
                              consumed={"cost_cents": 300}).state == RunState.RUNNING
    suspended = services.heartbeat(run.pk, executor="e1", consumed={"cost_cents": 212})
    assert suspended.state == RunState.SUSPENDED
    assert suspended.suspend_reason == "budget exhausted: cost_cents 512/500"
    assert suspended.suspended_by == "budget"
    assert suspended.attempts == 0  # preempted: the attempt does not count
    assert suspended.consumed == {"cost_cents": 512}
    assert (suspended.lease_owner, suspended.lease_expires_at) == ("", None)
    last = suspended.transitions.last()
    assert (last.from_state, last.to_state, last.reason) == (
        "running", "suspended", "budget exhausted: cost_cents 512/500")
    with pytest.raises(LeaseLost):
        services.heartbeat(run.pk, executor="e1")


@pytest.mark.django_db
def test_replenish_raises_the_limit_and_resumes_at_once():
    run = running_with_budget({"cost_cents": 500})
    services.heartbeat(run.pk, executor="e1", consumed={"cost_cents": 512})
    resumed = services.replenish(run.pk, actor="alice", budget={"cost_cents": 1000})
    assert resumed.state == RunState.READY
    assert resumed.budget == {"cost_cents": 1000} and resumed.consumed == {"cost_cents": 512}
    assert (resumed.suspend_reason, resumed.suspended_by) == ("", "")
    assert resumed.transitions.last().reason == "budget replenished"


@pytest.mark.django_db
def test_replenish_that_still_leaves_a_dimension_exhausted_only_raises_the_limit():
    run = running_with_budget({"cost_cents": 500, "tokens": 10})
    services.heartbeat(run.pk, executor="e1", consumed={"cost_cents": 600, "tokens": 20})
    still = services.replenish(run.pk, actor="alice", budget={"cost_cents": 1000})
    assert still.state == RunState.SUSPENDED and still.budget == {"cost_cents": 1000, "tokens": 10}


@pytest.mark.django_db
def test_replenish_on_a_running_run_raises_limits_without_moving_it():
    run = running_with_budget({"tokens": 10})
    raised = services.replenish(run.pk, actor="alice", budget={"tokens": 20, "seconds": 60})
    assert raised.state == RunState.RUNNING and raised.budget == {"tokens": 20, "seconds": 60}


@pytest.mark.django_db
@pytest.mark.parametrize("budget", [{}, {"tokens": 5}, {"tokens": -1}, {"tokens": "x"}])
def test_replenish_only_raises_limits(budget):
    run = running_with_budget({"tokens": 10})
    with pytest.raises(InvalidInput):
        services.replenish(run.pk, actor="alice", budget=budget)
    assert Run.objects.get(pk=run.pk).budget == {"tokens": 10}


@pytest.mark.django_db
def test_the_clock_never_resumes_an_operators_suspension_but_a_person_can():
    run = running_with_budget({})
    services.suspend(run.pk, actor="alice", reason="wait for the migration")
    far_future = timezone.now() + timedelta(days=30)
    assert services.tick(now=far_future)["budgets_resumed"] == 0
    assert Run.objects.get(pk=run.pk).state == RunState.SUSPENDED
    resumed = services.resume(run.pk, actor="alice")
    assert resumed.state == RunState.READY
    assert resumed.transitions.last().actor == "alice"


@pytest.mark.django_db
def test_the_clock_resumes_a_budget_suspension_only_once_the_budget_allows():
    run = running_with_budget({"cost_cents": 500})
    services.heartbeat(run.pk, executor="e1", consumed={"cost_cents": 512})
    assert services.tick()["budgets_resumed"] == 0
    edited = Run.objects.get(pk=run.pk)  # e.g. an admin raised the limit by hand
    edited.budget = {"cost_cents": 600}
    edited.save()
    assert services.tick()["budgets_resumed"] == 1
    resumed = Run.objects.get(pk=run.pk)
    assert resumed.state == RunState.READY
    assert resumed.transitions.last().actor == "clock"


@pytest.mark.django_db
def test_an_exhausted_budget_suspension_can_still_be_resumed_by_hand():
    run = running_with_budget({"tokens": 10})
    services.heartbeat(run.pk, executor="e1", consumed={"tokens": 11})
    assert services.resume(run.pk, actor="alice").state == RunState.READY


@pytest.mark.django_db
def test_the_clock_judges_budgets_in_sql_and_ignores_hand_edited_junk(make_run):
    exhausted = make_run(RunState.SUSPENDED, suspended_by="budget", budget={"tokens": 10},
                         consumed={"tokens": 10})
    fits = make_run(RunState.SUSPENDED, suspended_by="budget", budget={"tokens": 10, "usd": 2},
                    consumed={"tokens": 9.5})
    junk = make_run(RunState.SUSPENDED, suspended_by="budget", budget={"tokens": "ten"},
                    consumed={"tokens": "lots"})
    mixed = make_run(RunState.SUSPENDED, suspended_by="budget", budget={"tokens": "ten"},
                     consumed={"tokens": 50})
    assert set(Run.objects.within_budget().values_list("pk", flat=True)) == {
        fits.pk, junk.pk, mixed.pk}
    assert services.tick()["budgets_resumed"] == 3
    assert Run.objects.get(pk=exhausted.pk).state == RunState.SUSPENDED
