"""A run seen as a django.tasks `TaskResult`: status mapping, attempts, worker ids and errors.

Runboard's nine states map onto django.tasks' four statuses (README, "The state mapping"):

| run state | TaskResult status | why |
|---|---|---|
| scheduled, ready, leased | READY | not started yet (an HTTP executor leases, then starts) |
| retry_wait | READY | "ready to be executed again", once its backoff ends |
| suspended | READY | preempted (budget or operator); it goes back in line when resumed |
| running | RUNNING | |
| completed | SUCCESSFUL | |
| failed | FAILED | |
| canceled | FAILED | with a `TaskCanceled` error naming who canceled it and why |
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from django.utils.module_loading import import_string

from ..models import Run, Transition
from ..states import RunState
from .compat import Task, TaskError, TaskResult, TaskResultDoesNotExist, TaskResultStatus
from .exceptions import AttemptLost, TaskCanceled

STATUS_BY_STATE: dict[str, TaskResultStatus] = {
    RunState.SCHEDULED: TaskResultStatus.READY,
    RunState.READY: TaskResultStatus.READY,
    RunState.LEASED: TaskResultStatus.READY,
    RunState.RETRY_WAIT: TaskResultStatus.READY,
    RunState.SUSPENDED: TaskResultStatus.READY,
    RunState.RUNNING: TaskResultStatus.RUNNING,
    RunState.COMPLETED: TaskResultStatus.SUCCESSFUL,
    RunState.FAILED: TaskResultStatus.FAILED,
    RunState.CANCELED: TaskResultStatus.FAILED,
}

# The services prefix a final failure's audit reason with why no retry remains.
_FAILED_PREFIX = re.compile(r"^(attempt \d+/\d+|not retryable): ")
# "package.module.ClassName: message", the first line the worker writes for an exception.
_CLASS_LINE = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+): ?")


def error_text(exception_class_path: str, message: str, traceback: str) -> str:
    """The error a worker records for a failed attempt: a first line the audit trail and the
    board show ("module.Class: message"), then the full traceback."""
    return f"{exception_class_path}: {message}\n\n{traceback}"


def task_error(text: str) -> TaskError:
    """A `TaskError` from a recorded error: its class from the first line when the worker wrote
    it, else `AttemptLost` (the clock failed a silent attempt, or an HTTP executor did)."""
    match = _CLASS_LINE.match(_FAILED_PREFIX.sub("", text))
    path = match.group(1) if match else f"{AttemptLost.__module__}.{AttemptLost.__qualname__}"
    return TaskError(exception_class_path=path, traceback=text)


def task_for(run: Run, *, backend: str) -> Task:
    """The django.tasks `Task` a run was enqueued from, or `TaskResultDoesNotExist`."""
    payload = run.payload if isinstance(run.payload, dict) else {}
    if payload.get("backend") != backend or not {"args", "kwargs"} <= payload.keys():
        raise TaskResultDoesNotExist(f"run {run.pk} is not a task of backend {backend!r}")
    try:
        found = import_string(run.name)
    except ImportError:
        raise TaskResultDoesNotExist(f"run {run.pk}: cannot import task {run.name!r}") from None
    if not isinstance(found, Task):
        raise TaskResultDoesNotExist(f"run {run.pk}: {run.name!r} is not a task")
    return found


def result_from_run(run: Run, *, task: Task, backend: str) -> TaskResult:
    """Build the `TaskResult` django.tasks callers see for `run` (one query for its history)."""
    if run.state == RunState.RUNNING and run.attempts == 1:
        # A first attempt just started (the worker's hot path): its history is the run itself.
        history = [{"to_state": RunState.RUNNING, "at": run.started_at,
                    "actor": run.lease_owner, "reason": ""}]
    else:
        history = list(
            Transition.objects.filter(
                run=run,
                to_state__in=[RunState.RUNNING, RunState.RETRY_WAIT, RunState.FAILED,
                              RunState.CANCELED],
            ).order_by("id").values("to_state", "at", "actor", "reason")
        )
    starts = [row for row in history if row["to_state"] == RunState.RUNNING]
    failures = [row for row in history
                if row["to_state"] in (RunState.RETRY_WAIT, RunState.FAILED)]
    errors = [task_error(row["reason"]) for row in failures]
    if errors and run.last_error:
        # Audit reasons keep each attempt's first line; the run keeps the last full traceback.
        errors[-1] = task_error(run.last_error)
    if run.state == RunState.CANCELED:
        canceled = next(row for row in reversed(history) if row["to_state"] == RunState.CANCELED)
        errors.append(TaskError(
            exception_class_path=f"{TaskCanceled.__module__}.{TaskCanceled.__qualname__}",
            traceback=f"canceled by {canceled['actor'] or 'unknown'}"
                      + (f": {canceled['reason']}" if canceled["reason"] else ""),
        ))
    payload: dict[str, Any] = run.payload
    result = TaskResult(
        task=task,
        id=str(run.pk),
        status=STATUS_BY_STATE[run.state],
        enqueued_at=run.created_at,
        started_at=starts[0]["at"] if starts else None,
        finished_at=run.finished_at,
        last_attempted_at=starts[-1]["at"] if starts else None,
        args=payload["args"],
        kwargs=payload["kwargs"],
        backend=backend,
        errors=errors,
        worker_ids=[row["actor"] for row in starts],
    )
    if run.state == RunState.COMPLETED:
        object.__setattr__(result, "_return_value", run.result)
    return result


def completed_result(started: TaskResult, run: Run) -> TaskResult:
    """The `TaskResult` of `run`, just completed, from the one built when its attempt started:
    no start or failure came between them, so only the status, the finish and the return value
    differ (the worker's hot path: no query for the run's history)."""
    result = replace(started, status=TaskResultStatus.SUCCESSFUL, finished_at=run.finished_at)
    object.__setattr__(result, "_return_value", run.result)
    return result
