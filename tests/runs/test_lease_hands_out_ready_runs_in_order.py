"""`services.lease`: higher priority first, then oldest; queue filter; limit; ready runs only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs import services
from runs.exceptions import InvalidInput
from runs.models import Run
from runs.queues import pause_queue
from runs.states import RunState


@pytest.mark.django_db
def test_lease_takes_higher_priority_first_then_the_oldest(make_run, now):
    old_low = make_run(priority=0, created_at=now - timedelta(minutes=3))
    new_high = make_run(priority=9, created_at=now - timedelta(minutes=1))
    old_high = make_run(priority=9, created_at=now - timedelta(minutes=2))
    newest_low = make_run(priority=0, created_at=now)
    leased = services.lease(executor="e1", limit=10)
    assert [run.pk for run in leased] == [old_high.pk, new_high.pk, old_low.pk, newest_low.pk]


@pytest.mark.django_db
def test_a_leased_run_holds_the_lease_of_its_executor(make_run):
    run = make_run()
    before = timezone.now()
    (leased,) = services.lease(executor="exec-7", lease_seconds=45)
    stored = Run.objects.get(pk=run.pk)
    assert stored.state == RunState.LEASED and stored.lease_owner == "exec-7"
    assert stored.lease_seconds == 45
    assert before + timedelta(seconds=45) <= stored.lease_expires_at
    assert stored.lease_expires_at <= timezone.now() + timedelta(seconds=45)
    assert stored.transitions.get().actor == "exec-7"
    assert leased.version == stored.version == 2


@pytest.mark.django_db
def test_lease_respects_the_limit_and_the_queues(make_run):
    for queue in ("mail", "mail", "mail", "video", "default"):
        make_run(queue=queue)
    mail = services.lease(executor="e1", queues=["mail"], limit=2)
    assert [run.queue for run in mail] == ["mail", "mail"]
    rest = services.lease(executor="e2", queues=["mail", "video"], limit=10)
    assert sorted(run.queue for run in rest) == ["mail", "video"]
    assert [run.queue for run in services.lease(executor="e3", limit=10)] == ["default"]
    assert services.lease(executor="e4", limit=10) == []


@pytest.mark.django_db
def test_several_queues_are_leased_in_one_order_and_a_paused_one_is_left_out(make_run, now):
    def run(queue: str, priority: int, minutes_ago: int) -> Run:
        return make_run(queue=queue, priority=priority,
                        created_at=now - timedelta(minutes=minutes_ago))

    a_old, a_high, b_mid, b_new = run("a", 0, 9), run("a", 5, 1), run("b", 3, 5), run("b", 0, 2)
    run("c", 9, 9)  # not asked for
    leased = services.lease(executor="e1", queues=["b", "a", "b"], limit=3)
    assert [r.pk for r in leased] == [a_high.pk, b_mid.pk, a_old.pk]
    pause_queue(queue="b", actor="olga")
    assert services.lease(executor="e1", queues=["a", "b"], limit=10) == []
    assert Run.objects.get(pk=b_new.pk).state == RunState.READY


@pytest.mark.django_db
@pytest.mark.parametrize("state", [s for s in RunState if s != RunState.READY], ids=str)
def test_lease_never_hands_out_a_run_that_is_not_ready(make_run, state):
    make_run(state)
    assert services.lease(executor="e1", limit=5) == []


@pytest.mark.django_db
@pytest.mark.parametrize("arguments", [{"executor": ""}, {"executor": "e", "limit": 0},
                                       {"executor": "e", "lease_seconds": 0}])
def test_lease_refuses_bad_arguments(arguments):
    with pytest.raises(InvalidInput):
        services.lease(**arguments)
