"""The executor protocol: lease, start, heartbeat, complete, fail. Bearer tokens only.

A token acts as the executor it names. Acting on a run that executor never leased is a 403;
acting on a run whose lease it lost (canceled, lapsed, taken over) is a 409 whose body says
`"stop": true` — the executor must drop the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from django.http import HttpRequest
from ninja import Router

from runs import heartbeats, services
from runs.api_selectors import executor_ever_leased
from runs.exceptions import LeaseLost, RunCanceled
from runs.models import Run
from runs.states import RunState

from .auth import executor_only
from .errors import ApiError, NotLeaseHolder
from .openapi import links
from .schemas import (
    CompleteIn,
    ErrorOut,
    FailIn,
    HeartbeatIn,
    HeartbeatOut,
    LeaseIn,
    LeaseOut,
    RunSummary,
)
from .serialize import run_out

router = Router(tags=["executors"], auth=executor_only)

T = TypeVar("T")
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut,
          413: ErrorOut}


def as_lease_holder(run_id: UUID, executor: str, act: Callable[[], T]) -> T:
    """Run an executor verb; tell "never yours" (403) from "no longer yours" (409)."""
    try:
        return act()
    except LeaseLost as error:
        if not executor_ever_leased(run_id, executor):
            raise NotLeaseHolder(
                f"run {run_id} was never leased to executor {executor}; "
                "a token may act only on runs it leased",
                run_id=run_id, current_state=error.current_state,
            ) from error
        if not isinstance(error, RunCanceled):
            error.message = f"{error.message}. Stop working on it."
        raise


FINISH = {"completeRun": "Report success with a result.",
          "failRun": "Report a failed attempt."}


@router.post("/lease", response={200: LeaseOut, **ERRORS}, summary="Lease ready runs",
             operation_id="lease",
             openapi_extra=links(200, "$response.body#/runs/0/id",
                                 startRun="Start the first leased run.",
                                 heartbeatRun="Renew the lease of a run leased with "
                                              "`start: true`.", **FINISH))
def lease(request: HttpRequest, body: LeaseIn | None = None) -> dict[str, Any]:
    """Take up to `limit` ready runs (higher priority first, then oldest) for this executor.

    With `"start": true` they are started too and come back running: the audit trail and the
    board still see both moves, leased then running.
    """
    body = body or LeaseIn()
    executor = request.auth.name
    if body.executor is not None and body.executor != executor:
        raise ApiError(403, "executor_mismatch",
                       f"this token acts as executor {executor!r}, not {body.executor!r}",
                       field="executor")
    runs = services.lease(executor=executor, queues=body.queues, limit=body.limit,
                          lease_seconds=body.lease_seconds, start=body.start)
    return {"runs": [run_out(run) for run in runs]}


@router.post("/runs/{run_id}/start", response={200: RunSummary, **ERRORS}, summary="Start a run",
             operation_id="startRun",
             openapi_extra=links(200, heartbeatRun="Renew the lease, report progress.", **FINISH))
def start(request: HttpRequest, run_id: UUID) -> dict[str, Any]:
    """leased → running; counts one attempt and renews the lease."""
    executor = request.auth.name
    run = as_lease_holder(run_id, executor, lambda: services.start(run_id, executor=executor))
    return run.live_data()


@router.post("/runs/{run_id}/heartbeat", response={200: HeartbeatOut, **ERRORS},
             summary="Heartbeat", operation_id="heartbeatRun",
             openapi_extra=links(200, "$response.body#/run/id", **FINISH))
def heartbeat(request: HttpRequest, run_id: UUID,
              body: HeartbeatIn | None = None) -> dict[str, Any]:
    """Renew the lease, report progress (0-100) and consumption (added to the totals).

    Crossing a budget limit suspends the run: the answer says `"stop": true`.
    """
    body = body or HeartbeatIn()
    executor = request.auth.name
    run: Run = as_lease_holder(run_id, executor, lambda: heartbeats.heartbeat(
        run_id, executor=executor, progress=body.progress, consumed=body.consumed))
    stop = run.state != RunState.RUNNING
    message = (f"run is {run.state}: {run.suspend_reason or 'stop working on it'}" if stop
               else f"lease renewed until {run.lease_expires_at.isoformat()}")
    return {"run": run.live_data(), "stop": stop, "message": message}


@router.post("/runs/{run_id}/complete", response={200: RunSummary, **ERRORS},
             summary="Complete a run", operation_id="completeRun",
             openapi_extra=links(200, rerunRun="Run the same work again."))
def complete(request: HttpRequest, run_id: UUID, body: CompleteIn | None = None) -> dict[str, Any]:
    """running → completed, with an optional JSON result."""
    executor = request.auth.name
    result = body.result if body else None
    return as_lease_holder(run_id, executor, lambda: services.complete(
        run_id, executor=executor, result=result)).live_data()


@router.post("/runs/{run_id}/fail", response={200: RunSummary, **ERRORS}, summary="Fail a run",
             operation_id="failRun",
             openapi_extra=links(200, retryRun="Skip the backoff.", rerunRun="Run it again."))
def fail(request: HttpRequest, run_id: UUID, body: FailIn) -> dict[str, Any]:
    """The attempt failed: retry_wait with backoff while attempts remain (and `retryable`),
    else failed."""
    executor = request.auth.name
    return as_lease_holder(run_id, executor, lambda: services.fail(
        run_id, executor=executor, error=body.error, retryable=body.retryable)).live_data()
