"""What a running task can tell Runboard: progress and consumption, and whether to stop.

    @task(takes_context=True)
    def summarize(context: RunboardContext, doc_id: int) -> dict:
        for step, chunk in enumerate(chunks, 1):
            tokens = work(chunk)
            context.report(progress=step * 100 // len(chunks), consumed={"tokens": tokens})
        return {"chunks": len(chunks)}

`report` is a heartbeat: it extends the lease, moves the board's progress bar and adds to the
run's consumption, so a budget limit suspends the run. When the run was canceled, suspended or
its lease lost, `report` (and `check`) raise `RunStopped` so the task stops where it stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from asgiref.sync import sync_to_async

from .compat import TaskContext


class RunStopped(BaseException):
    """The run must stop: canceled, suspended (budget or operator), or its lease was lost.

    A `BaseException`, like `asyncio.CancelledError`, so that a task's `except Exception`
    does not swallow it by accident.
    """


class AttemptReporter(Protocol):
    """The worker's side of a running attempt (see `runs.worker.attempt.Attempt`)."""

    def report(self, *, progress: int | None, consumed: Mapping[str, float] | None) -> None: ...

    @property
    def stop_reason(self) -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RunboardContext(TaskContext):
    """The `context` a `takes_context=True` task receives from `runboard_worker`."""

    attempt_reporter: AttemptReporter = field(repr=False)

    @property
    def run_id(self) -> str:
        """The id of the run this attempt works on (also `task_result.id`)."""
        return self.task_result.id

    @property
    def stopping(self) -> bool:
        """True once the run was canceled, suspended or its lease lost: stop soon."""
        return self.attempt_reporter.stop_reason is not None

    def check(self) -> None:
        """Raise `RunStopped` if the run must stop; cheap (no query), call it often."""
        reason = self.attempt_reporter.stop_reason
        if reason is not None:
            raise RunStopped(reason)

    def report(self, *, progress: int | None = None,
               consumed: Mapping[str, float] | None = None) -> None:
        """Record progress (0 to 100) and consumption now (one heartbeat, one write).

        Raises `RunStopped` when the run must stop, including when this very consumption
        exhausted its budget (the run is then suspended and resumes when replenished).
        """
        self.check()
        self.attempt_reporter.report(progress=progress, consumed=consumed)
        self.check()

    async def areport(self, *, progress: int | None = None,
                      consumed: Mapping[str, Any] | None = None) -> None:
        """`report` for async tasks (the write runs in a thread, off the event loop)."""
        await sync_to_async(self.report, thread_sensitive=False)(
            progress=progress, consumed=consumed)
