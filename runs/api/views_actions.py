"""Operator verbs on the API: the board's actions (`runs.actions`), plus replenish.

Same registry, permissions, services and audit as the board's buttons: an operator's session
needs the action's model permission (and the CSRF header); an executor token is a trusted
machine credential. A move the run's state does not allow now is a 409 with `current_state`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.http import HttpRequest
from ninja import Router, Status

from runs import services
from runs.actions import ACTIONS
from runs.exceptions import InvalidInput
from runs.models import Run

from .auth import actor_of, executor_or_operator, require_permission
from .errors import ApiError
from .openapi import links
from .schemas import ErrorOut, ReasonIn, ReplenishIn, RunSummary

router = Router(tags=["operators"], auth=executor_or_operator)

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut,
          413: ErrorOut}


def perform(request: HttpRequest, run_id: UUID, name: str, reason: str = "") -> Run:
    """One of the board's actions, checked and recorded exactly as the board does it."""
    action = ACTIONS[name]
    require_permission(request.auth, action.permission)
    return action.perform(run_id, actor=actor_of(request.auth), reason=reason)


@router.post("/runs/{run_id}/cancel", response={200: RunSummary, **ERRORS},
             summary="Cancel a run", operation_id="cancelRun",
             openapi_extra=links(200, rerunRun="Run the same work again."))
def cancel_run(request: HttpRequest, run_id: UUID, body: ReasonIn | None = None) -> dict[str, Any]:
    """Cancel a run in whatever unfinished state it is in; operators need runs.cancel_run."""
    return perform(request, run_id, "cancel", body.reason if body else "").live_data()


@router.post("/runs/{run_id}/suspend", response={200: RunSummary, **ERRORS},
             summary="Suspend a running run", operation_id="suspendRun",
             openapi_extra=links(200, resumeRun="Put it back in line."))
def suspend_run(request: HttpRequest, run_id: UUID,
                body: ReasonIn | None = None) -> dict[str, Any]:
    """running → suspended (the attempt does not count; its executor is told to stop, and the
    clock never resumes it). Operators need runs.suspend_run."""
    return perform(request, run_id, "suspend", body.reason if body else "").live_data()


@router.post("/runs/{run_id}/resume", response={200: RunSummary, **ERRORS},
             summary="Resume a suspended run", operation_id="resumeRun")
def resume_run(request: HttpRequest, run_id: UUID) -> dict[str, Any]:
    """suspended → ready. Operators need runs.resume_run."""
    return perform(request, run_id, "resume").live_data()


@router.post("/runs/{run_id}/retry", response={200: RunSummary, **ERRORS},
             summary="Retry now", operation_id="retryRun")
def retry_run(request: HttpRequest, run_id: UUID) -> dict[str, Any]:
    """retry_wait → ready at once, skipping the rest of the backoff. Operators need
    runs.retry_run."""
    return perform(request, run_id, "retry").live_data()


@router.post("/runs/{run_id}/rerun", response={201: RunSummary, **ERRORS},
             summary="Rerun a finished run", operation_id="rerunRun",
             openapi_extra=links(201, cancelRun="Cancel the new run."))
def rerun_run(request: HttpRequest, run_id: UUID) -> Status:
    """A finished run is never reopened: 201 with a new run linked by `rerun_of` (same name,
    queue, payload, priority, attempts, backoff and budget). Operators need runs.rerun_run."""
    return Status(201, perform(request, run_id, "rerun").live_data())


@router.post("/runs/{run_id}/replenish", response={200: RunSummary, **ERRORS},
             summary="Raise a run's budget", operation_id="replenishRun")
def replenish_run(request: HttpRequest, run_id: UUID, body: ReplenishIn) -> dict[str, Any]:
    """Raise budget limits; a run suspended by its budget resumes when it fits again.
    A limit below the run's current one is a 409 `not_allowed` (field `budget`): whether it
    lowers depends on the run, not on the request. Operators need runs.resume_run."""
    require_permission(request.auth, "runs.resume_run")
    try:
        run = services.replenish(run_id, actor=actor_of(request.auth), budget=body.budget)
    except InvalidInput as error:
        if error.run_id is None:  # the request itself was bad; the schema states those rules
            raise
        raise ApiError(409, "not_allowed", error.message, field="budget",
                       current_state=error.current_state) from error
    return run.live_data()
