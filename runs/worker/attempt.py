"""One attempt at one started run: call the task function, heartbeat, report the outcome.

Every service call of an attempt holds the attempt's lock, because the worker's heartbeat
(main thread) and the task's own reports or outcome (slot thread) would otherwise race on the
run's version, and a lost compare-and-set on an executor verb reads as a lost lease. Each call
keeps the run as it wrote it (`self.run`), so the outcome is recorded without reading the run
again (`services.complete(held=…)`), and the worker's `then` leases the slot's next run in the
outcome's own transaction: with a backlog, one commit per task.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import Callable, Mapping
from inspect import iscoroutinefunction
from typing import Any

from django.db import DatabaseError, transaction

from .. import services
from ..exceptions import LeaseLost, RunCanceled, TransitionError
from ..models import Run
from ..states import RunState
from ..tasks.compat import Task, TaskResult, TaskResultDoesNotExist, task_finished, task_started
from ..tasks.context import RunboardContext, RunStopped
from ..tasks.exceptions import NotATask, ReturnValueNotJSON
from ..tasks.jsonvalues import as_json
from ..tasks.results import completed_result, error_text, result_from_run, task_for

logger = logging.getLogger(__name__)


def class_path(kind: type) -> str:
    """The dotted path django.tasks uses to name an exception class."""
    return f"{kind.__module__}.{kind.__qualname__}"


class Attempt:
    """A run the worker leased and started, from calling its task to its outcome."""

    def __init__(self, run: Run, *, executor: str,
                 then: Callable[[], list[Run]] | None = None) -> None:
        self.run = run
        # Called inside the transaction that records the outcome; what it leases and starts
        # is `successors` once that transaction has committed (never before: a rollback would
        # leave the worker calling tasks of runs it does not hold).
        self._then = then
        self.successors: list[Run] = []
        self.run_id = run.pk
        self.name = run.name
        self.executor = executor
        self.lock = threading.Lock()
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
        if not self.finished.is_set():
            self.report(progress=None, consumed=None)

    def report(self, *, progress: int | None, consumed: Mapping[str, float] | None) -> None:
        """One heartbeat with progress and consumption; stops the attempt if the run moved."""
        with self.lock:
            if self._stop_reason is not None or self.finished.is_set():
                return
            try:
                run = services.heartbeat(self.run_id, executor=self.executor, progress=progress,
                                         consumed=dict(consumed) if consumed else None)
                self.run = run
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
        """Run the task, record the outcome. Never raises; the caller sets `finished`."""
        try:
            self._execute()
        except DatabaseError:
            # The lease lapses and the clock fails or re-queues the attempt: nothing is lost.
            logger.exception("run %s: database error; the clock will take the run back",
                             self.run_id)

    def _execute(self) -> None:
        if self._stop_reason is not None:
            return  # stopped (canceled, lease lost) before its slot took it: nothing to run
        run = self.run
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
        if outcome is None:
            return
        if outcome.state == RunState.COMPLETED:
            finished = completed_result(result, outcome)  # this attempt's start is its last
        else:
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
        return self._record("complete", lambda: services.complete(
            self.run_id, executor=self.executor, result=value, held=self.run))

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
        return self._record("record the failure", lambda: services.fail(
            self.run_id, executor=self.executor, error=error, retryable=retryable,
            held=self.run))

    def _record(self, verb: str, write: Callable[[], Run]) -> Run | None:
        """Write the outcome and, in the same commit, lease the slot's next run."""
        with self.lock:
            try:
                try:
                    with transaction.atomic():
                        run = write()
                        successors = self._then() if self._then is not None else []
                except DatabaseError:
                    if self._then is None:
                        raise
                    # Whatever failed undid the outcome too: record it on its own.
                    logger.warning("run %s: leasing the next run beside the outcome failed; "
                                   "recording the outcome alone", self.run_id, exc_info=True)
                    run, successors = write(), []
            except TransitionError as error:
                logger.info("run %s: could not %s: %s", self.run_id, verb, error)
                return None
            self.run, self.successors = run, successors
        return run
