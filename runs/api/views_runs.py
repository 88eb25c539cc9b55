"""Submitting and reading runs (executor tokens; operator sessions read)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.http import HttpRequest
from ninja import Query, Router, Status

from runs import services
from runs.api_selectors import run_page

from .auth import actor_of, executor_only, executor_or_operator
from .openapi import links
from .schemas import ErrorOut, RunFilters, RunOut, RunPage, SubmitIn
from .serialize import run_out

router = Router(tags=["runs"])

READ_ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 413: ErrorOut}
WRITE_ERRORS = {**READ_ERRORS, 409: ErrorOut}


@router.post("/runs", response={201: RunOut, **WRITE_ERRORS}, auth=executor_only,
             summary="Submit a run", operation_id="submitRun",
             openapi_extra=links(
                 201, getRun="Read it.", cancelRun="Cancel it.",
                 lease={"description": "Lease from its queue (as an executor).",
                        "requestBody": {"queues": ["$response.body#/queue"], "limit": 1}}))
def submit_run(request: HttpRequest, body: SubmitIn) -> Status:
    """Create a run: `scheduled` when `scheduled_at` is in the future, else `ready`."""
    backoff = body.backoff.model_dump() if body.backoff else {}
    run = services.submit(
        name=body.name, queue=body.queue, payload=body.payload, priority=body.priority,
        scheduled_at=body.scheduled_at, max_attempts=body.max_attempts, budget=body.budget,
        actor=actor_of(request.auth), **{f"backoff_{key}": value for key, value in backoff.items()},
    )
    return Status(201, run_out(run))


@router.get("/runs", response={200: RunPage, **READ_ERRORS}, auth=executor_or_operator,
            summary="List runs", operation_id="listRuns")
def list_runs(request: HttpRequest, filters: Query[RunFilters]) -> dict[str, Any]:
    """Newest change first, at most `limit` (≤ 200) per page; follow `next_cursor`."""
    runs, next_cursor = run_page(state=filters.state, queue=filters.queue, name=filters.name,
                                 limit=filters.limit, cursor=filters.cursor)
    return {"items": [run.live_data() for run in runs], "next_cursor": next_cursor}


@router.get("/runs/{run_id}", response={200: RunOut, **READ_ERRORS}, auth=executor_or_operator,
            summary="Get a run", operation_id="getRun")
def get_run(request: HttpRequest, run_id: UUID) -> dict[str, Any]:
    return run_out(services.get_run(run_id))
