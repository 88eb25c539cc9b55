"""Errors of the django.tasks edge. They are also the exception classes a `TaskResult` names
for failures that were not a Python exception inside the task."""

from __future__ import annotations

from .compat import InvalidTaskError


class ArgumentsNotJSON(InvalidTaskError, TypeError):
    """A task was enqueued with arguments that JSON cannot carry to a worker."""


class ReturnValueNotJSON(TypeError):
    """A task returned a value that JSON cannot store as the run's result."""


class TaskCanceled(Exception):
    """The run was canceled (from the board, the admin, the API or `services.cancel`)."""


class AttemptLost(Exception):
    """An attempt ended without a Python exception: its worker stopped heartbeating (the clock
    failed the attempt), or a non-Python executor reported the failure."""


class NotATask(Exception):
    """A leased run does not name a django.tasks task this worker can import."""


class WorkerShutDown(Exception):
    """The worker was stopped and its grace period ended before the task finished."""
