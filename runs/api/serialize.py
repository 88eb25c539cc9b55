"""Runs as the API shows them."""

from __future__ import annotations

from typing import Any

from runs.models import Run


def run_out(run: Run) -> dict[str, Any]:
    """A run with its work (payload, result, full last error): `schemas.RunOut`."""
    return {**run.live_data(), "payload": run.payload, "result": run.result,
            "last_error": run.last_error, "lease_seconds": run.lease_seconds}
