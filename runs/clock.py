"""The clock loop behind `manage.py clock`: `services.tick` on an interval until told to stop,
the history fold every `FOLD_EVERY` seconds and, every `PRUNE_EVERY`, the pruning of the change
log and of the fine rollup rows (`runs.history.pruning`).

Several clocks may run at once (every tick step is a batch of compare-and-set moves, and a run
another clock moved first is skipped; the fold locks its cursor row, so a row is folded once;
pruning deletes in short batches), so scale-out
deployments simply run one per host.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from django.db import DatabaseError, close_old_connections

from . import services
from .changelog.pruning import prune as prune_change_log
from .history.fold import fold_all
from .history.pruning import prune_rollups
from .retention import finished_run_retention, prune_finished_runs, retention_cutoff
from .services import ticking

logger = logging.getLogger(__name__)

Tick = Callable[..., Mapping[str, int]]

PRUNE_EVERY = 600.0  # seconds between prunings of the change log
PRUNE_BATCHES = 20  # at most this many batches per pruning: a tick is never held up for long
FOLD_EVERY = 5.0  # seconds between folds of the change log into the history rollups
FOLD_BATCHES = 20  # at most this many fold batches per round; the rest waits for the next


def describe(moved: Mapping[str, int]) -> str:
    """"promoted=3 retries_due=1", or "nothing due" for an idle tick."""
    busy = [f"{step}={count}" for step, count in moved.items() if count]
    return " ".join(busy) if busy else "nothing due"


def run_clock(*, interval: float, stop: threading.Event, once: bool = False,
              tick: Tick = services.tick, now: Callable[[], datetime] | None = None,
              prune: Callable[..., int] = prune_change_log,
              fold: Callable[..., int] = fold_all,
              prune_history: Callable[..., int] = prune_rollups) -> int:
    """Tick until `stop` is set (or once); return how many ticks ran.

    A tick that filled a step's batch means more is due: the next tick follows at once instead
    of after `interval`. Between ticks the loop waits on `stop`, so a signal ends it at once. A
    database error is logged and retried after the interval (the database may be restarting),
    except with `once`, where it propagates.
    """
    ticks = 0
    pruned_at = folded_at = float("-inf")
    while not stop.is_set():
        try:
            moved = tick(now=now()) if now else tick()
            if once or time.monotonic() - folded_at >= FOLD_EVERY:
                # Before pruning: the fold's cursor is what lets pruning go further.
                folded_at = time.monotonic()
                fold(max_batches=FOLD_BATCHES)
            if once or time.monotonic() - pruned_at >= PRUNE_EVERY:
                pruned_at = time.monotonic()
                removed = prune(max_batches=PRUNE_BATCHES)
                if removed:
                    logger.info("clock pruned %d change-log row(s) past retention", removed)
                removed = prune_history(max_batches=PRUNE_BATCHES)
                if removed:
                    logger.info("clock pruned %d rollup row(s) past their window", removed)
                if finished_run_retention() is not None:
                    report = prune_finished_runs(finished_before=retention_cutoff(),
                                                 max_batches=PRUNE_BATCHES)
                    if report.runs:
                        logger.info("clock retention: %s", report.describe())
        except DatabaseError:
            if once:
                raise
            logger.exception("clock tick failed; retrying in %ss", interval)
            close_old_connections()
            stop.wait(interval)
            continue
        ticks += 1
        level = logging.INFO if any(moved.values()) else logging.DEBUG
        logger.log(level, "clock tick: %s", describe(moved))
        if once:
            break
        if any(count >= ticking.TICK_BATCH for count in moved.values()):
            continue  # a full batch: more is due right now
        stop.wait(interval)
    return ticks
