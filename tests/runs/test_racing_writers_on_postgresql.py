"""On PostgreSQL, with real concurrent connections: one winner per run, every loser told why,
no run leased twice, audit trails consistent."""

from __future__ import annotations

from collections import Counter
from functools import partial

import pytest

from runs import services
from runs.exceptions import LeaseLost, TransitionConflict, TransitionNotAllowed
from runs.models import Run, Transition
from runs.states import RunState
from tests.runs.conftest import assert_audit_consistent
from tests.runs.racing import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LOSSES = (TransitionConflict, TransitionNotAllowed, LeaseLost)


def test_stale_instances_racing_different_moves_have_exactly_one_winner(make_run):
    run = make_run(RunState.RUNNING, lease_owner="exec-1")
    copies = [Run.objects.get(pk=run.pk) for _ in range(9)]
    moves = [lambda c=c: c.transition_to(RunState.CANCELED, actor="alice") for c in copies[:3]]
    moves += [lambda c=c: c.transition_to(RunState.COMPLETED, actor="exec-1") for c in copies[3:6]]
    moves += [lambda c=c: c.amend(actor="exec-1", progress=50) for c in copies[6:]]

    outcomes = race(moves)

    assert [kind for kind, _ in outcomes].count("ok") == 1
    assert all(isinstance(error, TransitionConflict) for kind, error in outcomes if kind == "error")
    stored = Run.objects.get(pk=run.pk)
    assert stored.version == 2
    assert Transition.objects.filter(run=run).count() == (0 if stored.state == "running" else 1)


def test_cancel_complete_and_heartbeat_racing_through_services_end_consistently(make_run):
    for _ in range(5):
        run = make_run(RunState.RUNNING, lease_owner="exec-1")
        workers = [partial(services.cancel, run.pk, actor="alice", reason="race")] * 3
        workers += [partial(services.complete, run.pk, executor="exec-1", result=1)] * 3
        workers += [partial(services.heartbeat, run.pk, executor="exec-1", progress=10)] * 3

        outcomes = race(workers)

        stored = Run.objects.get(pk=run.pk)
        assert stored.state in (RunState.CANCELED, RunState.COMPLETED)
        finishers = [o for o, _ in outcomes[:6]]
        assert finishers.count("ok") == 1, outcomes  # exactly one terminal winner
        for kind, outcome in outcomes:
            if kind == "error":
                assert isinstance(outcome, LOSSES), repr(outcome)
        beats = [o for o, _ in outcomes[6:]].count("ok")
        trail = list(Transition.objects.filter(run=run).order_by("id"))
        assert [t.to_state for t in trail] == [stored.state]
        assert stored.version == 1 + len(trail) + beats  # every write counted once
        assert_audit_consistent(stored)


def test_eight_executors_leasing_from_a_hundred_runs_never_share_one(make_run):
    runs = {make_run(RunState.READY).pk for _ in range(100)}

    def executor(name: str):
        def work() -> list:
            mine = []
            while batch := services.lease(executor=name, limit=3):
                mine.extend(run.pk for run in batch)
            return mine
        return work

    outcomes = race([executor(f"exec-{i}") for i in range(8)])

    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    leased = [pk for _, mine in outcomes for pk in mine]
    assert len(leased) == len(set(leased)) == 100 and set(leased) == runs
    assert Counter(Transition.objects.filter(to_state="leased").values_list("run", flat=True)) \
        == Counter(dict.fromkeys(runs, 1))
    owners = dict(Run.objects.values_list("pk", "lease_owner"))
    for _, mine in outcomes:
        assert len({owners[pk] for pk in mine}) <= 1
