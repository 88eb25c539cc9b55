"""What a board card shows of a run: the columns to read and their JSON-ready form.

Selectors that build many cards fetch exactly `LIVE_FIELDS` with `.values()` (plus the head of
`last_error`), skipping model instances, payload, result and long tracebacks; a model instance
gives the same dict through `Run.live_data()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

ERROR_SUMMARY_CHARS = 300


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# The columns `live_data_from` reads.
LIVE_FIELDS: tuple[str, ...] = (
    "id", "name", "queue", "priority", "state", "version", "attempts", "max_attempts",
    "progress", "lease_owner", "lease_expires_at", "heartbeat_at", "next_attempt_at",
    "scheduled_at", "state_changed_at", "created_at", "started_at", "finished_at",
    "suspend_reason", "suspended_by", "budget", "consumed", "rerun_of_id",
)


def live_data_from(values: Mapping[str, Any], *, last_error: str) -> dict[str, Any]:
    """A run's card data from its `LIVE_FIELDS` values (a model's `__dict__` or a values row)."""
    error = last_error.strip()
    rerun_of = values["rerun_of_id"]
    return {
        "id": str(values["id"]),
        "short_id": str(values["id"])[-8:],
        "name": values["name"],
        "queue": values["queue"],
        "priority": values["priority"],
        "state": str(values["state"]),
        "version": values["version"],
        "attempts": values["attempts"],
        "max_attempts": values["max_attempts"],
        "progress": values["progress"],
        "lease_owner": values["lease_owner"],
        "lease_expires_at": _iso(values["lease_expires_at"]),
        "heartbeat_at": _iso(values["heartbeat_at"]),
        "next_attempt_at": _iso(values["next_attempt_at"]),
        "scheduled_at": _iso(values["scheduled_at"]),
        "state_changed_at": _iso(values["state_changed_at"]),
        "created_at": _iso(values["created_at"]),
        "started_at": _iso(values["started_at"]),
        "finished_at": _iso(values["finished_at"]),
        "suspend_reason": values["suspend_reason"],
        "suspended_by": values["suspended_by"],
        "budget": values["budget"],
        "consumed": values["consumed"],
        "error_summary": error.splitlines()[0][:ERROR_SUMMARY_CHARS] if error else "",
        "rerun_of": str(rerun_of) if rerun_of else None,
    }
