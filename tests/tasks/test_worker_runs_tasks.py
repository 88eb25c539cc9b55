"""`manage.py runboard_worker` as a real subprocess, seen only through the django.tasks API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from runs import services
from runs.models import Run, Transition
from runs.states import RunState
from runs.tasks.compat import TaskResult, TaskResultStatus
from tests.tasks import jobs
from tests.tasks.conftest import Workers, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def finished(result: TaskResult, timeout: float = 30) -> TaskResult:
    """Refresh `result` until it is finished."""
    def probe() -> bool:
        result.refresh()
        return result.is_finished
    wait_for(probe, timeout=timeout, what=f"task {result.id} to finish")
    return result


def test_a_return_value_comes_back(workers: Workers) -> None:
    worker = workers.start("--concurrency", "2")
    added = jobs.add.enqueue(2, 3)
    awaited = jobs.add_later.enqueue(4, 5)
    context = jobs.which_attempt.enqueue()
    assert finished(added).return_value == 5
    assert finished(awaited).return_value == {"sum": 9}
    assert finished(context).return_value == {"attempt": 1, "run_id": context.id}
    assert added.status == TaskResultStatus.SUCCESSFUL
    assert len(added.worker_ids) == 1 and added.worker_ids[0].endswith(added.worker_ids[0][-4:])
    assert added.started_at <= added.finished_at
    assert workers.stop(worker) == 0


def test_an_exception_fails_the_task_with_its_traceback_after_its_retries(
        workers: Workers) -> None:
    workers.start()
    result = finished(jobs.explode.enqueue("kaboom"))
    assert result.status == TaskResultStatus.FAILED
    assert len(result.errors) == 2 and len(result.worker_ids) == 2  # max_attempts=2
    assert all(error.exception_class is ValueError for error in result.errors)
    assert "Traceback (most recent call last)" in result.errors[-1].traceback
    assert "ValueError: kaboom" in result.errors[-1].traceback
    assert 'raise ValueError(message)' in result.errors[-1].traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_a_return_value_json_cannot_store_fails_without_retrying(workers: Workers) -> None:
    workers.start()
    result = finished(jobs.returns_a_set.enqueue())
    assert result.status == TaskResultStatus.FAILED
    assert len(result.worker_ids) == 1
    assert "must be JSON-serializable" in result.errors[0].traceback


def test_a_deferred_task_does_not_run_early(workers: Workers) -> None:
    workers.start()
    due = timezone.now() + timedelta(seconds=2)
    deferred = jobs.add.using(run_after=due).enqueue(1, 1)
    now = jobs.add.enqueue(2, 2)
    finished(now)
    deferred.refresh()
    assert deferred.status == TaskResultStatus.READY and deferred.started_at is None
    finished(deferred)
    assert deferred.started_at >= due
    assert deferred.return_value == 2


def test_higher_priority_runs_first(workers: Workers) -> None:
    lows = [jobs.stamp.using(priority=-10).enqueue(f"low-{i}") for i in range(4)]
    high = jobs.stamp.using(priority=50).enqueue("high")
    workers.start("--queue", "tasks")
    for result in [*lows, high]:
        finished(result)
    assert high.started_at < min(low.started_at for low in lows)
    order = [low.started_at for low in lows]
    assert order == sorted(order)  # equal priority: oldest first


def test_a_canceled_task_stops_its_worker_and_stays_canceled(
        workers: Workers, tmp_path: Path) -> None:
    marker = tmp_path / "slow.txt"
    workers.start("--lease-seconds", "3")
    result = jobs.slow.enqueue(600, str(marker))
    wait_for(lambda: marker.exists(), what="the slow task to start")
    services.cancel(result.id, actor="olga", reason="changed my mind")
    wait_for(lambda: "stopped" in marker.read_text(), timeout=10, what="the task to stop")
    assert "canceled" in marker.read_text()
    # The slot is free again: the next task runs on the same (single-slot) worker.
    assert finished(jobs.add.enqueue(1, 2)).return_value == 3
    run = Run.objects.get(pk=result.id)
    assert run.state == RunState.CANCELED and run.result is None
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].traceback == "canceled by olga: changed my mind"


def test_a_budget_suspends_the_task_and_its_worker_stops(workers: Workers) -> None:
    workers.start()
    result = jobs.metered.enqueue()
    run = wait_for(lambda: Run.objects.filter(pk=result.id, state=RunState.SUSPENDED).first(),
                   what="the budget to suspend the run")
    assert run.suspend_reason.startswith("budget exhausted: tokens")
    assert run.consumed["tokens"] >= 100
    result.refresh()
    assert result.status == TaskResultStatus.READY  # suspended: back in line when replenished
    assert finished(jobs.add.enqueue(1, 1)).return_value == 2  # the slot was freed


def test_sigterm_during_slow_tasks_drains_them_and_exits_0(
        workers: Workers, tmp_path: Path) -> None:
    worker = workers.start("--concurrency", "2")
    markers = [tmp_path / f"slow-{i}.txt" for i in range(2)]
    slow = [jobs.slow.enqueue(15, str(marker)) for marker in markers]
    wait_for(lambda: all(marker.exists() for marker in markers), what="both slow tasks")
    waiting = jobs.add.enqueue(1, 1)
    assert workers.stop(worker) == 0
    for result in slow:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 15
    assert Run.objects.get(pk=waiting.id).state == RunState.READY  # never leased, still queued
    assert "drain" in workers.log(worker)


def test_a_task_still_running_after_the_grace_period_is_failed_for_a_retry(
        workers: Workers, tmp_path: Path) -> None:
    marker = tmp_path / "stubborn.txt"
    worker = workers.start("--grace-seconds", "0.5")
    result = jobs.stubborn.enqueue(30, str(marker))
    wait_for(lambda: marker.exists(), what="the stubborn task to start")
    assert workers.stop(worker, timeout=10) == 0
    run = Run.objects.get(pk=result.id)
    assert run.state == RunState.RETRY_WAIT
    assert "WorkerShutDown" in run.last_error


def test_two_workers_over_500_tasks_run_each_exactly_once(workers: Workers) -> None:
    results = [jobs.noop.enqueue() for _ in range(500)]
    first = workers.start("--concurrency", "2")
    second = workers.start("--concurrency", "2")
    wait_for(lambda: Run.objects.filter(state=RunState.COMPLETED).count() == 500,
             timeout=240, what="500 tasks to complete")
    assert workers.stop(first) == 0 and workers.stop(second) == 0
    starts = Transition.objects.filter(to_state=RunState.RUNNING)
    assert starts.count() == 500
    assert starts.values("run").distinct().count() == 500
    assert {row.actor for row in starts} == {*_worker_ids(results)}
    assert len({*_worker_ids(results)}) == 2  # both took part


def _worker_ids(results: list[TaskResult]) -> list[str]:
    ids = []
    for result in results:
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
        ids.extend(result.worker_ids)
    return ids
