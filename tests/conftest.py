"""Shared fixtures: run factories, time, and service requirements (fail under CI, else skip)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from runs.models import Run
from runs.states import RunState
from tests.backends import missing

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(service: str) -> None:
    """Fail under CI, skip elsewhere, when `service` cannot be reached."""
    problem = missing(service)
    if problem:
        if IN_CI:
            pytest.fail(f"{problem} (required under CI=true)")
        pytest.skip(problem)


@pytest.fixture(autouse=True)
def _service_markers(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        message = (f"needs PostgreSQL, this pass runs on {connection.vendor} "
                   "(set DATABASE_URL=postgres://…)")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    if request.node.get_closest_marker("redis"):
        if not os.environ.get("REDIS_URL"):
            message = "needs Redis (set REDIS_URL=redis://…)"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        require("redis")
    if request.node.get_closest_marker("browser"):
        require("chromium")


@pytest.fixture
def now() -> datetime:
    return timezone.now()


@pytest.fixture
def make_run(now: datetime):
    """Create a run in any state with fields that let its table moves pass their guards."""

    def factory(state: RunState | str = RunState.READY, **fields: Any) -> Run:
        state = RunState(state)
        defaults: dict[str, Any] = {"name": "send-report", "queue": "default", "state": state,
                                    "scheduled_at": now - timedelta(seconds=1)}
        if state in (RunState.LEASED, RunState.RUNNING):
            defaults.update(lease_owner="exec-1", lease_expires_at=now + timedelta(seconds=30))
        if state == RunState.RUNNING:
            defaults.update(attempts=1, started_at=now)
        if state == RunState.RETRY_WAIT:
            defaults.update(attempts=1, next_attempt_at=now - timedelta(seconds=1),
                            last_error="boom")
        if state == RunState.SUSPENDED:
            defaults.update(suspend_reason="operator asked", suspended_by="operator")
        defaults.update(fields)
        return Run.objects.create(**defaults)

    return factory
