"""The demo's example tasks, executed by a real worker: each kind ends the way it is meant to."""

from __future__ import annotations

import pytest

from runs import demo_tasks
from runs.models import Run
from runs.states import RunState
from runs.tasks.compat import TaskResultStatus
from tests.tasks.conftest import Workers, wait_for
from tests.tasks.test_worker_runs_tasks import finished

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_kind_of_demo_task_runs_on_the_tasks_queue(workers: Workers) -> None:
    workers.start("--queue", demo_tasks.QUEUE, "--concurrency", "4")
    quick = demo_tasks.checksum.enqueue("hello")
    slow = demo_tasks.render_thumbnails.enqueue(2)
    flaky = demo_tasks.call_flaky_partner.enqueue(1)
    budgeted = demo_tasks.summarize_with_llm.enqueue(10)
    assert finished(quick).return_value.startswith("2cf24dba")
    assert finished(slow).return_value == {"images": 2}
    assert Run.objects.get(pk=slow.id).progress == 100
    assert finished(flaky, timeout=60).return_value == "ok after 2 attempt(s)"
    assert len(flaky.errors) == 1 and flaky.errors[0].exception_class is ConnectionError
    suspended = wait_for(
        lambda: Run.objects.filter(pk=budgeted.id, state=RunState.SUSPENDED).first(),
        what="the budgeted task to be suspended")
    assert suspended.suspend_reason == "budget exhausted: tokens 420/400"
    budgeted.refresh()
    assert budgeted.status == TaskResultStatus.READY
