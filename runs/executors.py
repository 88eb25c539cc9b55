"""What the Executors page shows: who holds leases now, when each was last heard from, what it
holds, and what it finished in the last hour.

Selectors only, bounded whatever the table size:
- the executors are the lease owners of the runs in hand (leased, running), grouped from the
  partial index `run_lease_holder` (migration 0005), which holds only those runs: their number
  is what the fleet leases at once, not the size of the table; at most `EXECUTOR_LIMIT` owners;
- finished and failed in the last hour come from the audit trail (`Transition`: the executor is
  the actor, `to_state` completed or failed, `at` within the hour), one range of the partial
  index `transition_actor_finished` per executor and outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from .models import Run, Transition
from .states import RunState

EXECUTOR_LIMIT = 500
FINISH_WINDOW = timedelta(hours=1)
# runs/client.py heartbeats every third of the lease; two missed beats make an executor stale.
BEATS_PER_LEASE = 3
MISSED_BEATS_FOR_STALE = 2


@dataclass(frozen=True)
class ExecutorRow:
    """One lease owner as the Executors page shows it."""

    name: str
    leased: int
    running: int
    last_heartbeat_at: datetime | None  # newest heartbeat of any run it holds
    last_contact_at: datetime  # newest heartbeat, lease or start of any run it holds
    lease_seconds: int  # its shortest lease
    next_expiry_at: datetime | None  # when its first lease lapses unless it reports
    completed_hour: int
    failed_hour: int

    @property
    def in_hand(self) -> int:
        return self.leased + self.running

    @property
    def heartbeat_interval(self) -> timedelta:
        """How often a well-behaved executor reports (runs/client.py: a third of the lease)."""
        return timedelta(seconds=self.lease_seconds / BEATS_PER_LEASE)

    @property
    def stale_after(self) -> timedelta:
        return self.heartbeat_interval * MISSED_BEATS_FOR_STALE

    def is_stale(self, now: datetime) -> bool:
        """No contact for longer than two heartbeat intervals: it may have died."""
        return now - self.last_contact_at > self.stale_after


@dataclass(frozen=True)
class ExecutorOverview:
    """Every lease owner (up to `EXECUTOR_LIMIT`) as of `at`."""

    at: datetime
    executors: list[ExecutorRow]
    truncated: bool

    @property
    def stale_count(self) -> int:
        return sum(1 for row in self.executors if row.is_stale(self.at))


def executor_overview(*, now: datetime | None = None,
                      limit: int = EXECUTOR_LIMIT) -> ExecutorOverview:
    """The lease owners of the runs in hand, in two queries."""
    now = now or timezone.now()
    held = list(
        Run.objects.filter(state__in=(RunState.LEASED, RunState.RUNNING))
        .values("lease_owner")
        .annotate(
            leased=Count("pk", filter=Q(state=RunState.LEASED)),
            running=Count("pk", filter=Q(state=RunState.RUNNING)),
            last_heartbeat_at=Max("heartbeat_at"),
            last_moved_at=Max("state_changed_at"),
            lease_seconds=Min("lease_seconds"),
            next_expiry_at=Min("lease_expires_at"),
        )
        .order_by("lease_owner")[: limit + 1]
    )
    truncated = len(held) > limit
    held = held[:limit]
    finished = _finished_since([row["lease_owner"] for row in held], since=now - FINISH_WINDOW)
    executors = [
        ExecutorRow(
            name=row["lease_owner"],
            leased=row["leased"],
            running=row["running"],
            last_heartbeat_at=row["last_heartbeat_at"],
            last_contact_at=max(filter(None, (row["last_heartbeat_at"], row["last_moved_at"]))),
            lease_seconds=row["lease_seconds"],
            next_expiry_at=row["next_expiry_at"],
            completed_hour=finished.get((row["lease_owner"], RunState.COMPLETED), 0),
            failed_hour=finished.get((row["lease_owner"], RunState.FAILED), 0),
        )
        for row in held
    ]
    return ExecutorOverview(at=now, executors=executors, truncated=truncated)


def _finished_since(actors: list[str], *, since: datetime) -> dict[tuple[str, str], int]:
    """(actor, completed|failed) → how many runs that actor moved there since `since`."""
    if not actors:
        return {}
    rows = (
        Transition.objects.filter(actor__in=actors, at__gte=since,
                                  to_state__in=(RunState.COMPLETED, RunState.FAILED))
        .values_list("actor", "to_state")
        .annotate(moved=Count("pk"))
        .order_by()
    )
    return {(actor, state): moved for actor, state, moved in rows}
