"""The verbs executors, the clock, the dashboard, the admin and the HTTP API share.

Each acts through `Run.transition_to` (or `Run.amend` for writes that move no state), so the
table, the guards, the audit row and the change-log row apply whoever calls. Executor verbs
check that the caller holds the lease; operator verbs reload and decide again when the run
moved underneath them. One module per capability: `submission` (submit, rerun), `executors`
(lease, start, heartbeat, complete, fail), `operators` (suspend, resume, retry_now, cancel,
replenish) and `ticking` (the clock's pass).
"""

from __future__ import annotations

from .executors import complete, fail, heartbeat, lease, start
from .lookups import CONFLICT_RETRIES, get_run
from .operators import cancel, replenish, resume, retry_now, suspend
from .submission import BACKOFF_OPTIONS, rerun, submit
from .ticking import CLOCK_ACTOR, TICK_BATCH, tick

__all__ = [
    "BACKOFF_OPTIONS", "CLOCK_ACTOR", "CONFLICT_RETRIES", "TICK_BATCH", "cancel", "complete",
    "fail", "get_run", "heartbeat", "lease", "replenish", "rerun", "resume", "retry_now",
    "start", "submit", "suspend", "tick",
]
