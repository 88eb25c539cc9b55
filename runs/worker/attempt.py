"""One attempt at one run: start it, call the task function, heartbeat, report the outcome.

Every service call of an attempt holds the attempt's lock, because the worker's heartbeat
(main thread) and the task's own reports or outcome (slot thread) would otherwise race on the
run's version, and a lost compare-and-set on an executor verb reads as a lost lease.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import Mapping
from inspect import iscoroutinefunction
from typing import Any

from django.db import DatabaseError

from .. import services
from ..exceptions import LeaseLost, RunCanceled, TransitionError
from ..models import Run
from ..states import RunState
from ..tasks.compat import Task, TaskResult, TaskResultDoesNotExist, task_finished, task_started
from ..tasks.context import RunboardContext, RunStopped
from ..tasks.exceptions import NotATask, ReturnValueNotJSON
from ..tasks.jsonvalues import as_json
from ..tasks.results import error_text, result_from_run, task_for

logger = logging.getLogger(__name__)


def class_path(kind: type) -> str:
    """The dotted path django.tasks uses to name an exception class."""
    return f"{kind.__module__}.{kind.__qualname__}"


class Attempt:
    """A leased run in a worker, from `start` to its outcome (or to giving it back)."""

    def __init__(self, run: Run, *, executor: str) -> None:
        self.run_id = run.pk
        self.name = run.name
        self.executor = executor
        self.lock = threading.Lock()
        self.started = False
        self.finished = threading.Event()
        self._stop_reason: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[Any] | None = None

    # -- what the worker and the task's context call -----------------------------------------

    @property
    def stop_reason(self) -> str | None:
        """Why the run must stop (canceled, suspended, lease lost), or None while it may go on."""
        return self._stop_reason

    def stop(self, reason: str) -> None:
        """Ask the task to stop: sync tasks at their next `context.report`/`check`, async tasks
        at once (their coroutine is cancelled at its current await)."""
        if self._stop_reason is None:
            self._stop_reason = reason
            logger.info("run %s (%s): stopping: %s", self.run_id, self.name, reason)
        loop, future = self._loop, self._future
        if loop is not None and future is not None:
            loop.call_soon_threadsafe(future.cancel)

    def heartbeat(self) -> None:
        """Extend the lease (the worker calls this every third of the lease)."""
        if self.started and not self.finished.is_set():
            self.report(progress=None, consumed=None)

    def report(self, *, progress: int | None, consumed: Mapping[str, float] | None) -> None:
        """One heartbeat with progress and consumption; stops the attempt if the run moved."""
        with self.lock:
            if self._stop_reason is not None or self.finished.is_set():
                return
            try:
                run = services.heartbeat(self.run_id, executor=self.executor, progress=progress,
                                         consumed=dict(consumed) if consumed else None)
            except RunCanceled:
                self.stop("the run was canceled")
                return
            except LeaseLost as error:
                self.stop(f"lease lost: {error.message}")
                return
            except TransitionError as error:
                self.stop(f"the run moved on: {error.message}")
                return
        if run.state != RunState.RUNNING:
            self.stop(f"the run is {run.state}: {run.suspend_reason or 'no reason given'}")

    # -- the slot thread ----------------------------------------------------------------------

    def execute(self) -> None:
        """Start the run, run its task, record the outcome. Never raises."""
        try:
            self._execute()
        except DatabaseError:
            # The lease lapses and the clock fails or re-queues the attempt: nothing is lost.
            logger.exception("run %s: database error; the clock will take the run back",
                             self.run_id)
        finally:
            self.finished.set()

    def _execute(self) -> None:
        with self.lock:
            try:
                run = services.start(self.run_id, executor=self.executor)
            except TransitionError as error:
                logger.info("run %s: not started: %s", self.run_id, error)
                return
            self.started = True
        alias = run.payload.get("backend", "") if isinstance(run.payload, dict) else ""
        try:
            task = task_for(run, backend=alias)
        except TaskResultDoesNotExist as error:
            self._fail(error_text(class_path(NotATask), str(error), ""), retryable=False)
            return
        backend_type = type(task.get_backend())
        result = result_from_run(run, task=task, backend=alias)
        task_started.send(sender=backend_type, task_result=result)
        outcome = self._call(task, result)
        if outcome is not None:
            finished = result_from_run(outcome, task=task, backend=alias)
            task_finished.send(sender=backend_type, task_result=finished)

    def _call(self, task: Task, result: TaskResult) -> Run | None:
        """Run the function; return the run after its outcome was recorded (None if stopped)."""
        args = list(result.args)
        if task.takes_context:
            args.insert(0, RunboardContext(task_result=result, attempt_reporter=self))
        try:
            if iscoroutinefunction(task.func):
                value = self._await(task.func(*args, **result.kwargs))
            else:
                value = task.func(*args, **result.kwargs)
        except (RunStopped, asyncio.CancelledError):
            logger.info("run %s: stopped (%s)", self.run_id, self._stop_reason)
            return None
        except Exception as error:
            if self._stop_reason is not None:
                return None  # stopping may surface as any error; the run is not ours to fail
            text = error_text(class_path(type(error)), str(error),
                              "".join(traceback.format_exception(error)))
            return self._fail(text, retryable=True)
        if self._stop_reason is not None:
            logger.info("run %s: finished after it was told to stop (%s); result dropped",
                        self.run_id, self._stop_reason)
            return None
        try:
            value = as_json(value, error=ReturnValueNotJSON, what=f"the return value of "
                                                                  f"{task.module_path}")
        except ReturnValueNotJSON as error:
            return self._fail(error_text(class_path(ReturnValueNotJSON), str(error), ""),
                              retryable=False)
        with self.lock:
            try:
                return services.complete(self.run_id, executor=self.executor, result=value)
            except TransitionError as error:
                logger.info("run %s: could not complete: %s", self.run_id, error)
                return None

    def _await(self, coroutine: Any) -> Any:
        """Run a coroutine on this thread's own loop, cancellable from `stop`."""
        loop = asyncio.new_event_loop()
        try:
            future = asyncio.ensure_future(coroutine, loop=loop)
            self._loop, self._future = loop, future
            if self._stop_reason is not None:
                future.cancel()
            return loop.run_until_complete(future)
        finally:
            self._loop = self._future = None
            loop.close()

    def _fail(self, error: str, *, retryable: bool) -> Run | None:
        with self.lock:
            try:
                return services.fail(self.run_id, executor=self.executor, error=error,
                                     retryable=retryable)
            except TransitionError as lost:
                logger.info("run %s: could not record the failure: %s", self.run_id, lost)
                return None
