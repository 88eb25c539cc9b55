"""start/heartbeat/complete/fail: only the live lease holder may call them; a canceled run's
executor is told to stop; a heartbeat extends the lease and records progress and consumption."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs import services
from runs.exceptions import InvalidInput, LeaseLost, RunCanceled, RunNotFound, TransitionNotAllowed
from runs.models import Run
from runs.states import RunState
from tests.runs.conftest import audit, row

VERBS = {
    "start": lambda run_id, executor: services.start(run_id, executor=executor),
    "heartbeat": lambda run_id, executor: services.heartbeat(run_id, executor=executor),
    "complete": lambda run_id, executor: services.complete(run_id, executor=executor),
    "fail": lambda run_id, executor: services.fail(run_id, executor=executor, error="x"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("state", [RunState.LEASED, RunState.RUNNING], ids=str)
def test_anyone_but_the_lease_holder_gets_lease_lost(make_run, verb, state):
    run = make_run(state, lease_owner="exec-1")
    before = row(run.pk)
    with pytest.raises(LeaseLost) as lost:
        VERBS[verb](run.pk, "exec-2")
    assert lost.value.code == "lease_lost" and "exec-1" in str(lost.value)
    assert row(run.pk) == before


@pytest.mark.django_db
@pytest.mark.parametrize("verb", VERBS)
def test_the_holder_of_an_expired_lease_gets_lease_lost(make_run, now, verb):
    run = make_run(RunState.RUNNING, lease_expires_at=now - timedelta(seconds=1))
    with pytest.raises(LeaseLost, match="expired"):
        VERBS[verb](run.pk, "exec-1")


@pytest.mark.django_db
@pytest.mark.parametrize("verb", VERBS)
def test_the_executor_of_a_canceled_run_is_told_to_stop(make_run, verb):
    run = make_run(RunState.RUNNING, lease_owner="exec-1")
    services.cancel(run.pk, actor="alice", reason="duplicate")
    with pytest.raises(RunCanceled) as stop:
        VERBS[verb](run.pk, "exec-1")
    assert isinstance(stop.value, LeaseLost) and stop.value.code == "canceled"


@pytest.mark.django_db
@pytest.mark.parametrize("verb", VERBS)
def test_a_verb_on_a_run_that_went_back_to_ready_is_lease_lost(make_run, verb):
    run = make_run(RunState.READY)
    with pytest.raises(LeaseLost):
        VERBS[verb](run.pk, "exec-1")


@pytest.mark.django_db
def test_verbs_in_the_wrong_phase_are_refused_by_the_lifecycle(make_run):
    leased = make_run(RunState.LEASED)
    for verb in ("heartbeat", "complete", "fail"):
        with pytest.raises(TransitionNotAllowed):
            VERBS[verb](leased.pk, "exec-1")
    running = make_run(RunState.RUNNING)
    with pytest.raises(TransitionNotAllowed):
        services.start(running.pk, executor="exec-1")
    assert audit(leased.pk) == audit(running.pk) == []


@pytest.mark.django_db
def test_an_unknown_run_is_not_found():
    with pytest.raises(RunNotFound):
        services.start("not-a-uuid", executor="e1")
    with pytest.raises(RunNotFound):
        services.cancel("0190a0a0-0000-7000-8000-000000000000", actor="op")


@pytest.mark.django_db
def test_start_counts_an_attempt_and_renews_the_lease(make_run, now):
    run = make_run(RunState.LEASED, lease_seconds=60, lease_expires_at=now + timedelta(seconds=5))
    started = services.start(run.pk, executor="exec-1")
    assert started.state == RunState.RUNNING and started.attempts == 1
    assert started.started_at is not None
    assert started.lease_expires_at >= now + timedelta(seconds=60)


@pytest.mark.django_db
def test_a_heartbeat_extends_the_lease_and_records_progress_and_consumption(make_run, now):
    run = make_run(RunState.RUNNING, lease_seconds=30, lease_expires_at=now + timedelta(seconds=2),
                   budget={"tokens": 1000})
    beat = services.heartbeat(run.pk, executor="exec-1", progress=40, consumed={"tokens": 100})
    assert beat.lease_expires_at >= now + timedelta(seconds=30)
    services.heartbeat(run.pk, executor="exec-1", consumed={"tokens": 50, "seconds": 3})
    stored = Run.objects.get(pk=run.pk)
    assert stored.state == RunState.RUNNING and stored.progress == 40
    assert stored.consumed == {"tokens": 150, "seconds": 3}
    assert stored.heartbeat_at >= now and stored.version == 3
    assert audit(run.pk) == []  # heartbeats are updates, not moves


@pytest.mark.django_db
@pytest.mark.parametrize("arguments", [{"progress": 101}, {"progress": -1}, {"progress": True},
                                       {"consumed": {"tokens": -5}}, {"consumed": "lots"}])
def test_a_heartbeat_with_bad_numbers_is_refused(make_run, arguments):
    run = make_run(RunState.RUNNING)
    before = row(run.pk)
    with pytest.raises(InvalidInput):
        services.heartbeat(run.pk, executor="exec-1", **arguments)
    assert row(run.pk) == before


@pytest.mark.django_db
def test_complete_records_the_result_and_releases_the_lease(make_run):
    run = make_run(RunState.RUNNING)
    done = services.complete(run.pk, executor="exec-1", result={"rows": 12})
    stored = Run.objects.get(pk=run.pk)
    assert done.state == stored.state == RunState.COMPLETED
    assert stored.result == {"rows": 12}
    assert (stored.lease_owner, stored.lease_expires_at) == ("", None)
    assert stored.finished_at is not None and stored.finished_at <= timezone.now()


HELD_VERBS = {
    "complete": lambda run_id, executor, held: services.complete(
        run_id, executor=executor, held=held),
    "fail": lambda run_id, executor, held: services.fail(
        run_id, executor=executor, error="x", held=held),
}


@pytest.mark.django_db
@pytest.mark.parametrize("verb", HELD_VERBS)
def test_a_held_run_that_moved_underneath_gets_the_same_answer_as_a_fresh_read(make_run, verb):
    held = make_run(RunState.RUNNING, lease_owner="exec-1")
    services.cancel(held.pk, actor="alice", reason="duplicate")  # `held` is now out of date
    with pytest.raises(RunCanceled):
        HELD_VERBS[verb](held.pk, "exec-1", held)
    assert Run.objects.get(pk=held.pk).state == RunState.CANCELED


@pytest.mark.django_db
@pytest.mark.parametrize("verb", HELD_VERBS)
def test_a_held_run_another_executor_now_holds_is_lease_lost(make_run, verb, now):
    held = make_run(RunState.RUNNING, lease_owner="exec-1")
    Run.objects.filter(pk=held.pk).update(lease_owner="exec-2", version=held.version + 1)
    with pytest.raises(LeaseLost, match="exec-2"):
        HELD_VERBS[verb](held.pk, "exec-1", held)


@pytest.mark.django_db
def test_completing_an_up_to_date_held_run_reads_nothing(make_run):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    held = make_run(RunState.RUNNING, lease_owner="exec-1")
    with CaptureQueriesContext(connection) as queries:
        done = services.complete(held.pk, executor="exec-1", result=7, held=held)
    assert done.state == RunState.COMPLETED and Run.objects.get(pk=held.pk).result == 7
    assert not [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]
