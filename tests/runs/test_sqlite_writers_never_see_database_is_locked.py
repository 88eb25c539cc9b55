"""Four writer threads on the embedded SQLite default (WAL, BEGIN IMMEDIATE, busy timeout):
every write lands, and nobody ever sees "database is locked"."""

from __future__ import annotations

import pytest

from runs import services
from runs.models import Run
from runs.states import RunState
from tests.runs.conftest import assert_audit_consistent
from tests.runs.racing import race


@pytest.mark.django_db(transaction=True)
def test_four_writers_complete_their_runs_without_a_locked_database():
    def writer(name: str):
        def work() -> int:
            done = 0
            for _ in range(15):
                services.submit(name="etl", queue=name)
                (run,) = services.lease(executor=name, queues=[name])
                services.start(run.pk, executor=name)
                services.heartbeat(run.pk, executor=name, progress=50)
                services.complete(run.pk, executor=name)
                done += 1
            return done
        return work

    outcomes = race([writer(f"w{i}") for i in range(4)], timeout=120)

    assert outcomes == [("ok", 15)] * 4, outcomes
    assert Run.objects.filter(state=RunState.COMPLETED).count() == 60
    for run in Run.objects.all():
        assert run.version == 5  # created, leased, running, heartbeat, completed
        assert_audit_consistent(run)
