"""Attempts count starts, not suspensions; failures retry with a capped exponential backoff
while attempts remain, and fail for good after."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runs import services
from runs.lifecycle import backoff_delay
from runs.models import Run
from runs.states import RunState


def start_attempt(run_id, executor: str = "e1") -> Run:
    (leased,) = services.lease(executor=executor)
    assert leased.pk == run_id
    return services.start(run_id, executor=executor)


@pytest.mark.django_db
def test_fail_retries_while_attempts_remain_and_fails_for_good_after():
    run = services.submit(name="flaky", max_attempts=2, backoff_jitter=0)
    start_attempt(run.pk)
    waiting = services.fail(run.pk, executor="e1", error="Timeout\ntraceback…")
    assert waiting.state == RunState.RETRY_WAIT and waiting.attempts == 1
    assert waiting.last_error == "Timeout\ntraceback…"
    assert waiting.live_data()["error_summary"] == "Timeout"

    services.retry_now(run.pk, actor="op")
    start_attempt(run.pk)
    failed = services.fail(run.pk, executor="e1", error="Timeout again")
    assert failed.state == RunState.FAILED and failed.attempts == 2
    assert failed.finished_at is not None


@pytest.mark.django_db
def test_a_failure_that_is_not_retryable_fails_at_once():
    run = services.submit(name="bad-input", max_attempts=5)
    start_attempt(run.pk)
    failed = services.fail(run.pk, executor="e1", error="invalid payload", retryable=False)
    assert failed.state == RunState.FAILED and failed.attempts == 1
    assert "not retryable" in failed.transitions.last().reason


@pytest.mark.django_db
def test_a_suspended_attempt_does_not_count_toward_max_attempts():
    run = services.submit(name="long", max_attempts=1)
    start_attempt(run.pk)
    assert Run.objects.get(pk=run.pk).attempts == 1
    suspended = services.suspend(run.pk, actor="op", reason="maintenance")
    assert suspended.attempts == 0
    services.resume(run.pk, actor="op")
    running = start_attempt(run.pk, executor="e2")
    assert running.attempts == 1  # the preempted attempt was not spent
    assert services.fail(run.pk, executor="e2", error="x").state == RunState.FAILED


@pytest.mark.django_db
def test_backoff_grows_exponentially_and_is_capped(make_run, now):
    run = make_run(RunState.RUNNING, max_attempts=10, backoff_base_seconds=2,
                   backoff_factor=3, backoff_cap_seconds=60, backoff_jitter=0)
    assert [backoff_delay(run, attempt).total_seconds() for attempt in range(1, 7)] == [
        2, 6, 18, 54, 60, 60]
    run.attempts = 3
    waiting = run.transition_to(RunState.RETRY_WAIT, now=now)
    assert waiting.next_attempt_at == now + timedelta(seconds=18)


@pytest.mark.django_db
def test_jitter_only_shortens_the_delay_and_never_exceeds_the_cap(make_run):
    run = make_run(RunState.RUNNING, backoff_base_seconds=1, backoff_factor=2,
                   backoff_cap_seconds=30, backoff_jitter=0.5)
    for attempt in range(1, 12):
        full = min(2 ** (attempt - 1), 30)
        for _ in range(50):
            delay = backoff_delay(run, attempt).total_seconds()
            assert full * 0.5 <= delay <= full <= 30
