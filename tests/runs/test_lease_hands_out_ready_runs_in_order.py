"""`services.lease`: higher priority first, then oldest; queue filter; limit; ready runs only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs import services
from runs.exceptions import InvalidInput
from runs.models import Run
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
