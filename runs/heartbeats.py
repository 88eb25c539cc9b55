"""Heartbeats that touch one row.

Executors heartbeat a running run every third of its lease, for as long as it runs: on a busy
installation most API requests are heartbeats. `services.heartbeat` reads the run, checks the
lease and the budget in Python, then compare-and-sets it. A heartbeat that reports no
consumption needs nothing from that read: on PostgreSQL it is one statement that renews the
lease only where the caller still holds it and appends the change-log row (`writes.
write_heartbeat`). Anything else — consumption (the budget may now suspend the run), a lease
that is not the caller's, lapsed or gone, SQLite (no round trip to save) — takes
`services.heartbeat`, which also says exactly why a heartbeat is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import connections, router
from django.utils import timezone

from . import services
from .changelog import writer as change_log
from .changelog.models import Change
from .exceptions import InvalidInput
from .models import Run
from .states import RunState
from .writes import write_heartbeat


def heartbeat(run_id: Any, *, executor: str, progress: int | None = None,
              consumed: Mapping[str, Any] | None = None) -> Run:
    """`services.heartbeat`, in one statement when only the lease and progress change."""
    alias = router.db_for_write(Run)
    if consumed or connections[alias].vendor != "postgresql":
        return services.heartbeat(run_id, executor=executor, progress=progress,
                                  consumed=consumed)
    if progress is not None and (isinstance(progress, bool) or not isinstance(progress, int)
                                 or not 0 <= progress <= 100):
        raise InvalidInput(f"progress must be between 0 and 100, not {progress!r}")
    now = timezone.now()
    try:
        run = write_heartbeat(Run, alias, pk=run_id, state=RunState.RUNNING, executor=executor,
                              now=now, progress=progress, change_model=Change,
                              kind=Change.UPDATE)
    except (ValueError, TypeError):  # not a run id at all: the service says "not found"
        run = None
    if run is None:  # not this executor's running run (any more): the service says why
        return services.heartbeat(run_id, executor=executor, progress=progress)
    change_log.hint_after_commit(alias)
    return run
