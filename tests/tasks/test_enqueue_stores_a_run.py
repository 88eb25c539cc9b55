"""`.enqueue()` through RunboardBackend: what the run holds, what is refused, how it reads back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs import services
from runs.models import Run
from runs.states import RunState
from runs.tasks import STATUS_BY_STATE, RunboardBackend
from runs.tasks.compat import (
    InvalidTaskError,
    TaskResultDoesNotExist,
    TaskResultStatus,
    default_task_backend,
    task_enqueued,
)
from runs.tasks.exceptions import ArgumentsNotJSON, TaskCanceled
from tests.tasks import jobs

pytestmark = pytest.mark.django_db


def test_enqueue_creates_a_ready_run_named_by_module_path() -> None:
    result = jobs.add.using(priority=7).enqueue(2, b=3)
    run = Run.objects.get(pk=result.id)
    assert run.name == "tests.tasks.jobs.add"
    assert (run.state, run.queue, run.priority) == (RunState.READY, "default", 7)
    assert run.payload == {"args": [2], "kwargs": {"b": 3}, "backend": "default"}
    assert result.status == TaskResultStatus.READY
    assert (result.args, result.kwargs, result.worker_ids, result.errors) == ([2], {"b": 3}, [], [])


def test_run_after_becomes_a_scheduled_run() -> None:
    later = timezone.now() + timedelta(minutes=5)
    result = jobs.add.using(run_after=later).enqueue(1, 1)
    run = Run.objects.get(pk=result.id)
    assert (run.state, run.scheduled_at) == (RunState.SCHEDULED, later)
    assert result.status == TaskResultStatus.READY


def test_arguments_json_cannot_carry_are_refused_at_enqueue() -> None:
    with pytest.raises(ArgumentsNotJSON, match=r"of tests\.tasks\.jobs\.add must be JSON"):
        jobs.add.enqueue(object(), 1)
    with pytest.raises(TypeError):  # also a TypeError, like django-tasks' own refusal
        jobs.add.enqueue(float("nan"), 1)
    assert not Run.objects.exists()


def test_options_set_retries_and_a_task_overrides_them() -> None:
    assert Run.objects.get(pk=jobs.add.enqueue(1, 2).id).max_attempts == 3  # OPTIONS
    exploding = Run.objects.get(pk=jobs.explode.enqueue("x").id)
    assert (exploding.max_attempts, exploding.backoff_base_seconds) == (2, 0.05)
    assert Run.objects.get(pk=jobs.metered.enqueue().id).budget == {"tokens": 100}


def test_unknown_options_are_a_configuration_error() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="does not take retries"):
        RunboardBackend("bad", {"OPTIONS": {"retries": 2}})


def test_a_queue_outside_QUEUES_is_refused() -> None:
    with pytest.raises(InvalidTaskError):
        jobs.add.using(queue_name="elsewhere")


def test_task_enqueued_is_sent_after_commit(django_capture_on_commit_callbacks) -> None:
    seen = []

    def receiver(sender, task_result, **kwargs):
        seen.append((sender, task_result.id))

    task_enqueued.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = jobs.add.enqueue(1, 2)
            assert seen == []  # not before the run is committed
    finally:
        task_enqueued.disconnect(receiver)
    assert seen == [(RunboardBackend, result.id)]


def test_every_state_maps_to_a_status() -> None:
    assert set(STATUS_BY_STATE) == set(RunState)
    assert STATUS_BY_STATE[RunState.COMPLETED] == TaskResultStatus.SUCCESSFUL
    assert STATUS_BY_STATE[RunState.CANCELED] == TaskResultStatus.FAILED


def test_a_canceled_task_reads_as_failed_with_who_canceled_it() -> None:
    result = jobs.add.enqueue(1, 2)
    services.cancel(result.id, actor="olga", reason="not needed")
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class is TaskCanceled
    assert result.errors[-1].traceback == "canceled by olga: not needed"


def test_runs_that_are_not_tasks_have_no_result(make_run) -> None:
    run = make_run(RunState.READY, name="send-report")
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(run.pk))
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result("not-a-uuid")


def test_get_result_checks_the_task() -> None:
    from runs.tasks.compat import TaskResult

    result = jobs.add.enqueue(1, 2)
    assert isinstance(jobs.add.get_result(result.id), TaskResult)
    with pytest.raises(Exception, match="Task does not match"):
        jobs.noop.get_result(result.id)
