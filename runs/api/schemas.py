"""Request and response shapes of the API; pydantic validates them and they make the OpenAPI.

Every bound here exists so that bad input is a 400 naming the field, never a database error:
integers fit the columns, floats are finite, strings hold no NUL, times are plausible.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Any

from django.utils import timezone
from ninja import Schema
from pydantic import AfterValidator, ConfigDict, Field

from runs.states import RunState

MAX_AMOUNT = 1e15  # per budget/consumption value: sums stay finite and exact enough


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _plausible_time(value: datetime) -> datetime:
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.UTC)
    try:
        now = timezone.now()
        if not now - timedelta(days=3650) <= value <= now + timedelta(days=3650):
            raise ValueError("must be within ten years of now")
    except OverflowError:
        raise ValueError("must be within ten years of now") from None
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
QueueName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_nul)]
Dimension = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_no_nul)]
Amount = Annotated[float, Field(ge=0, le=MAX_AMOUNT), AfterValidator(_finite)]
WhenAt = Annotated[datetime, AfterValidator(_plausible_time)]


class Input(Schema):
    """Requests refuse unknown fields, so a typo is a 400 rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")


class BackoffIn(Input):
    """Retry delays: base * factor^(attempt-1), capped, minus up to `jitter` of it at random."""

    base: float = Field(2.0, ge=0, le=86_400)
    factor: float = Field(2.0, ge=1, le=10)
    cap: float = Field(300.0, ge=0, le=7 * 86_400)
    jitter: float = Field(0.1, ge=0, le=1)


class SubmitIn(Input):
    name: Name
    queue: QueueName = "default"
    payload: Any = Field(default=None, description="Any JSON; handed to the executor as is.")
    priority: int = Field(0, ge=-1_000_000, le=1_000_000, description="Higher is leased first.")
    scheduled_at: WhenAt | None = Field(None, description="Not before this time (ISO 8601).")
    max_attempts: int = Field(3, ge=1, le=100)
    backoff: BackoffIn | None = None
    budget: dict[Dimension, Amount] | None = Field(
        None, max_length=20, description="Limit per dimension, e.g. {\"tokens\": 1000}.")


class LeaseIn(Input):
    executor: Name | None = Field(
        None, description="Optional; must be the token's executor name if given.")
    queues: list[QueueName] | None = Field(None, max_length=50)
    limit: int = Field(1, ge=1, le=100)
    lease_seconds: int = Field(30, ge=1, le=3600)


class HeartbeatIn(Input):
    progress: int | None = Field(None, ge=0, le=100)
    consumed: dict[Dimension, Amount] | None = Field(
        None, max_length=20, description="Use since the last heartbeat, added to the total.")


class CompleteIn(Input):
    result: Any = None


class FailIn(Input):
    error: Annotated[str, Field(min_length=1, max_length=20_000), AfterValidator(_no_nul)]
    retryable: bool = True


class CancelIn(Input):
    reason: Annotated[str, Field(max_length=1000), AfterValidator(_no_nul)] = ""


class ReplenishIn(Input):
    budget: dict[Dimension, Amount] = Field(..., min_length=1, max_length=20)


class RunFilters(Input):
    state: RunState | None = None
    queue: QueueName | None = None
    name: Name | None = None
    limit: int = Field(50, ge=1, le=200)
    cursor: Annotated[str, Field(max_length=200), AfterValidator(_no_nul)] | None = None


class RunSummary(Schema):
    """A run as the board shows it (no payload or result)."""

    id: str
    short_id: str
    name: str
    queue: str
    priority: int
    state: RunState
    version: int
    attempts: int
    max_attempts: int
    progress: int | None
    lease_owner: str
    lease_expires_at: str | None
    heartbeat_at: str | None
    next_attempt_at: str | None
    scheduled_at: str | None
    state_changed_at: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    suspend_reason: str
    suspended_by: str
    budget: dict[str, float]
    consumed: dict[str, float]
    error_summary: str
    rerun_of: str | None


class RunOut(RunSummary):
    """A run with its work: payload, result and the full last error."""

    payload: Any
    result: Any
    last_error: str
    lease_seconds: int


class RunPage(Schema):
    items: list[RunSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end.")


class LeaseOut(Schema):
    runs: list[RunOut]


class HeartbeatOut(Schema):
    run: RunSummary
    stop: bool = Field(description="True when the run is no longer running: stop working on it.")
    message: str


class FieldError(Schema):
    field: str
    message: str


class ErrorOut(Schema):
    status: int
    code: str
    message: str
    current_state: RunState | None = None
    field: str | None = None
    stop: bool | None = Field(None, description="True when an executor must stop this run.")
    errors: list[FieldError] | None = None


class HealthOut(Schema):
    status: str
    checks: dict[str, str]
