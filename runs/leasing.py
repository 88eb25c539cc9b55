"""Leasing and starting in one call: what an executor that starts at once asks for.

An executor that leases a run starts it straight away; as two calls that is two requests, two
transactions and two commits per run. `lease_and_start` makes both moves in one transaction:
each run still goes ready → leased → running through `Run.transition_to`, so the audit trail
and the change log hold both moves (the board sees the lease, then the start), with the same
guards and effects as `services.lease` followed by `services.start`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from . import services
from .models import Run
from .states import RunState


# No savepoint when called inside a transaction (a worker leases its next run in the one that
# records its last outcome): nothing here fails halfway but a database error, which dooms the
# caller's transaction anyway, and a savepoint costs two round trips.
@transaction.atomic(savepoint=False)
def lease_and_start(*, executor: str, queues: Iterable[str] | None = None, limit: int = 1,
                    lease_seconds: int = 30) -> list[Run]:
    """Lease up to `limit` ready runs to `executor` and start them: each comes back running,
    one attempt counted, its lease renewed from the start."""
    # services.lease locks its candidates (SKIP LOCKED on PostgreSQL; SQLite's writer lock);
    # the locks last until this transaction commits, so no one can move a run between its two
    # moves and the start's compare-and-set cannot lose.
    leased = services.lease(executor=executor, queues=queues, limit=limit,
                            lease_seconds=lease_seconds)
    now = timezone.now()
    return [run.transition_to(RunState.RUNNING, actor=executor, now=now,
                              lease_expires_at=now + timedelta(seconds=run.lease_seconds))
            for run in leased]
