"""`services.tick(now=…)`: each clock step, judged against the `now` passed in (never sleeping),
and several clocks at once never move a run twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from runs import services
from runs.models import Run, Transition
from runs.services import ticking
from runs.states import RunState
from tests.runs.conftest import assert_audit_consistent, audit

MINUTE = timedelta(minutes=1)
STEPS = {"promoted", "leases_expired", "attempts_lapsed", "retries_exhausted", "retries_due",
         "budgets_resumed"}


@pytest.mark.django_db
def test_an_idle_tick_moves_nothing_and_names_every_step(make_run):
    make_run(RunState.READY)
    assert services.tick() == dict.fromkeys(STEPS, 0)


@pytest.mark.django_db
def test_tick_promotes_scheduled_runs_once_they_are_due(make_run, now):
    due = make_run(RunState.SCHEDULED, scheduled_at=now + MINUTE)
    later = make_run(RunState.SCHEDULED, scheduled_at=now + 2 * MINUTE)
    assert services.tick(now=now)["promoted"] == 0
    assert services.tick(now=now + MINUTE)["promoted"] == 1
    assert Run.objects.get(pk=due.pk).state == RunState.READY
    assert Run.objects.get(pk=later.pk).state == RunState.SCHEDULED
    assert Transition.objects.get(run=due).actor == "clock"


@pytest.mark.django_db
def test_tick_returns_lapsed_leases_to_ready(make_run, now):
    run = make_run(RunState.LEASED, lease_expires_at=now + MINUTE)
    assert services.tick(now=now)["leases_expired"] == 0
    assert services.tick(now=now + MINUTE)["leases_expired"] == 1
    stored = Run.objects.get(pk=run.pk)
    assert (stored.state, stored.lease_owner, stored.attempts) == (RunState.READY, "", 0)


@pytest.mark.django_db
def test_a_running_run_whose_lease_lapsed_is_a_failed_attempt_that_retries(make_run, now):
    run = make_run(RunState.RUNNING, attempts=1, max_attempts=3, lease_expires_at=now + MINUTE,
                   backoff_jitter=0, backoff_base_seconds=10)
    assert services.tick(now=now)["attempts_lapsed"] == 0
    assert services.tick(now=now + MINUTE)["attempts_lapsed"] == 1
    stored = Run.objects.get(pk=run.pk)
    assert stored.state == RunState.RETRY_WAIT and stored.lease_owner == ""
    assert "stopped heartbeating" in stored.last_error
    assert stored.next_attempt_at == now + MINUTE + timedelta(seconds=10)


@pytest.mark.django_db
def test_a_lapsed_last_attempt_fails_the_run(make_run, now):
    run = make_run(RunState.RUNNING, attempts=3, max_attempts=3, lease_expires_at=now)
    assert services.tick(now=now)["attempts_lapsed"] == 1
    assert Run.objects.get(pk=run.pk).state == RunState.FAILED


@pytest.mark.django_db
def test_tick_ends_backoffs_that_are_over(make_run, now):
    run = make_run(RunState.RETRY_WAIT, next_attempt_at=now + MINUTE)
    assert services.tick(now=now)["retries_due"] == 0
    assert services.tick(now=now + MINUTE)["retries_due"] == 1
    assert Run.objects.get(pk=run.pk).state == RunState.READY


@pytest.mark.django_db
def test_tick_fails_retry_waits_with_no_attempt_left(make_run, now):
    run = make_run(RunState.RETRY_WAIT, attempts=2, max_attempts=2,
                   next_attempt_at=now + timedelta(hours=1))
    assert services.tick(now=now)["retries_exhausted"] == 1
    stored = Run.objects.get(pk=run.pk)
    assert stored.state == RunState.FAILED
    assert stored.transitions.last().reason == "no retry remains (attempt 2/2)"


@pytest.mark.django_db
def test_a_tick_leaves_unfinished_business_of_others_alone(make_run, now):
    untouched = [make_run(state) for state in RunState if state not in (
        RunState.SCHEDULED, RunState.LEASED, RunState.RUNNING, RunState.RETRY_WAIT)]
    services.tick(now=now + timedelta(days=1))
    assert all(audit(run.pk) == [] for run in untouched)


@pytest.mark.django_db
def test_a_second_clock_with_the_same_now_finds_nothing_left_to_do(make_run, now):
    for _ in range(5):
        make_run(RunState.SCHEDULED, scheduled_at=now)
    assert services.tick(now=now)["promoted"] == 5
    assert services.tick(now=now)["promoted"] == 0


@pytest.mark.django_db
def test_a_full_batch_is_reported_so_the_clock_can_tick_again_at_once(make_run, now,
                                                                      monkeypatch):
    monkeypatch.setattr(ticking, "TICK_BATCH", 3)
    for _ in range(5):
        make_run(RunState.SCHEDULED, scheduled_at=now)
    assert services.tick(now=now)["promoted"] == 3
    assert services.tick(now=now)["promoted"] == 2


@pytest.mark.django_db(transaction=True)
def test_two_clocks_ticking_at_once_do_no_double_work(make_run, now):
    runs = [make_run(RunState.SCHEDULED, scheduled_at=now) for _ in range(30)]
    runs += [make_run(RunState.RUNNING, lease_expires_at=now) for _ in range(10)]
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def clock() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(dict(services.tick(now=now)))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=clock) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(results) == 2
    assert sum(r["promoted"] for r in results) == 30
    assert sum(r["attempts_lapsed"] for r in results) == 10
    for run in runs:
        stored = Run.objects.get(pk=run.pk)
        assert len(audit(run.pk)) == 1, audit(run.pk)
        assert stored.version == 2
        assert_audit_consistent(stored)
