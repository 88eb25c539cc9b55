"""An attempt in the worker, in-process: its outcome and the slot's next lease share one commit,
and a failure of that lease never loses the outcome."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from runs import services
from runs.models import Run
from runs.states import RunState
from runs.worker.attempt import Attempt
from tests.tasks import jobs


def leased(executor: str = "worker-1") -> Run:
    (run,) = services.lease(executor=executor, limit=1, start=True)
    return run


@pytest.mark.django_db(transaction=True)
def test_the_outcome_and_the_next_lease_commit_together() -> None:
    first, second = jobs.add.enqueue(1, 2), jobs.add.enqueue(3, 4)
    attempt = Attempt(leased(), executor="worker-1",
                      then=lambda: services.lease(executor="worker-1", limit=1, start=True))
    attempt.execute()
    first.refresh()
    assert first.return_value == 3
    assert [run.pk for run in attempt.successors] == [Run.objects.get(pk=second.id).pk]
    assert Run.objects.get(pk=second.id).state == RunState.RUNNING


@pytest.mark.django_db(transaction=True)
def test_a_failing_next_lease_still_records_the_outcome_alone() -> None:
    first, second = jobs.add.enqueue(1, 2), jobs.add.enqueue(3, 4)

    def broken_lease() -> list[Run]:
        services.lease(executor="worker-1", limit=1, start=True)  # written, then undone
        raise OperationalError("the connection dropped mid-lease")

    attempt = Attempt(leased(), executor="worker-1", then=broken_lease)
    attempt.execute()
    first.refresh()
    assert first.return_value == 3 and attempt.successors == []
    assert Run.objects.get(pk=second.id).state == RunState.READY  # the lease was rolled back
