"""`RunboardBackend`: a django.tasks backend that stores each enqueued task as a Runboard run.

    TASKS = {"default": {
        "BACKEND": "runs.tasks.RunboardBackend",
        "QUEUES": ["default", "emails"],           # queue names tasks may use (run queues)
        "OPTIONS": {"max_attempts": 3,             # defaults for every task of this backend
                    "backoff_base": 2, "backoff_factor": 2, "backoff_cap": 300,
                    "backoff_jitter": 0.1, "budget": {"tokens": 10_000}},
    }}

Per task, the same names override OPTIONS: `@task(max_attempts=5, budget={"tokens": 500})`.
`manage.py runboard_worker` executes the runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from .. import services
from ..exceptions import InvalidInput, RunNotFound
from .compat import (
    BaseTaskBackend,
    InvalidTaskError,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    task_enqueued,
)
from .exceptions import ArgumentsNotJSON
from .jsonvalues import as_json
from .results import result_from_run, task_for

# What OPTIONS and a task may set, and the `services.submit` keyword each becomes.
RUN_OPTIONS: tuple[str, ...] = (
    "max_attempts", "budget", "backoff_base", "backoff_factor", "backoff_cap", "backoff_jitter",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunboardTask(Task):
    """A django.tasks `Task` that may override the backend's retry, backoff and budget OPTIONS.

    `None` means "the backend's OPTIONS decide" (and, failing those, `services.submit`'s
    defaults).
    """

    max_attempts: int | None = None
    budget: dict[str, float] | None = None
    backoff_base: float | None = None
    backoff_factor: float | None = None
    backoff_cap: float | None = None
    backoff_jitter: float | None = None


class RunboardBackend(BaseTaskBackend):
    """Enqueue as `services.submit`; read results back from the run."""

    task_class = RunboardTask
    supports_defer = True  # run_after becomes scheduled_at; the clock promotes it when due
    supports_priority = True  # run priority = task priority; higher is leased first
    supports_get_result = True  # any process reads the run
    supports_async_task = True  # the worker awaits coroutine functions

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        unknown = set(self.options) - set(RUN_OPTIONS)
        if unknown:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS'] does not take {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(RUN_OPTIONS)}"
            )

    def run_options(self, task: Task) -> dict[str, Any]:
        """The retry, backoff and budget settings of `task`: its own, else the backend's."""
        chosen = {name: self.options[name] for name in RUN_OPTIONS if name in self.options}
        for name in RUN_OPTIONS:
            value = getattr(task, name, None)
            if value is not None:
                chosen[name] = value
        return chosen

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Create the run (ready, or scheduled when `run_after` is later) and return its result."""
        self.validate_task(task)
        arguments = as_json({"args": list(args), "kwargs": dict(kwargs)}, error=ArgumentsNotJSON,
                            what=f"the arguments of {task.module_path}")
        try:
            run = services.submit(
                name=task.module_path,
                queue=task.queue_name,
                priority=task.priority,
                scheduled_at=task.run_after,
                payload={**arguments, "backend": self.alias},
                **self.run_options(task),
            )
        except InvalidInput as error:
            raise InvalidTaskError(f"{task.module_path}: {error.message}") from error
        result = result_from_run(run, task=task, backend=self.alias)
        # Like django-tasks' own backends, right after enqueueing; but never for a run that a
        # surrounding transaction then rolls back (immediately when there is none).
        transaction.on_commit(partial(task_enqueued.send, type(self), task_result=result))
        return result

    def get_result(self, result_id: str) -> TaskResult:
        """The task's result as the run stands now, or `TaskResultDoesNotExist`."""
        try:
            run = services.get_run(result_id)
        except RunNotFound:
            raise TaskResultDoesNotExist(result_id) from None
        return result_from_run(run, task=task_for(run, backend=self.alias), backend=self.alias)

