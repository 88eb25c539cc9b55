"""Retention of finished runs: delete runs finished before a cutoff, with their audit rows, in
bounded batches.

Each batch is one short transaction that deletes up to `RETENTION_BATCH` finished runs and
their `Transition` rows and appends one change-log row of kind "deleted" per run, so every
board's exact counts move down and the history fold records the move out of the finished
state. The rollups are never touched: charts of the pruned period keep their numbers.
Finished runs never change, so a batch conflicts with nothing; an interrupted pruning leaves
whole batches done and is simply run again. Unfinished runs are never selected, and neither
is a run whose finishing move the history fold has not read yet: the fold takes that move's
latency (queue wait, run time) from the run's audit rows, so pruning first would drop it from
the charts. Such a run goes in a later pruning, once the fold has passed it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import router, transaction
from django.utils import timezone

from .audit import Transition
from .changelog import writer as change_log
from .changelog.models import Change
from .changelog.reader import runs_changed_after
from .history.fold import folded_through
from .models import Run
from .states import TERMINAL_STATES

RETENTION_BATCH = 500
RETENTION_ACTOR = "retention"
FINISHED = tuple(sorted(str(state) for state in TERMINAL_STATES))


class RetentionOff(Exception):
    """`RUNBOARD["FINISHED_RUN_RETENTION"]` is not set and no cutoff was given."""

    code = "retention_off"


@dataclass
class PruneReport:
    """What a pruning removed."""

    runs: int = 0
    transitions: int = 0
    batches: int = 0
    by_state: Counter = field(default_factory=Counter)

    def describe(self) -> str:
        states = ", ".join(f"{state} {n}" for state, n in sorted(self.by_state.items()))
        return (f"removed {self.runs} finished run(s) ({states or 'none'}) and "
                f"{self.transitions} audit row(s) in {self.batches} batch(es)")


def finished_run_retention() -> timedelta | None:
    """The configured retention (days, or a timedelta), None when off (the default)."""
    value = settings.RUNBOARD.get("FINISHED_RUN_RETENTION")
    if value in (None, "", 0):
        return None
    return value if isinstance(value, timedelta) else timedelta(days=float(value))


def retention_cutoff(*, now: datetime | None = None) -> datetime:
    keep = finished_run_retention()
    if keep is None:
        raise RetentionOff("finished-run retention is off: set RUNBOARD['FINISHED_RUN_RETENTION']"
                           " or pass a cutoff")
    return (now or timezone.now()) - keep


def prune_finished_runs(*, finished_before: datetime, batch: int = RETENTION_BATCH,
                        max_batches: int | None = None, now: datetime | None = None
                        ) -> PruneReport:
    """Delete runs that finished before `finished_before`, oldest first, batch by batch."""
    report = PruneReport()
    alias = router.db_for_write(Run)
    while max_batches is None or report.batches < max_batches:
        taken = _prune_batch(alias, finished_before, batch, now or timezone.now(), report)
        if taken < batch:
            break
    return report


def _prune_batch(alias: str, cutoff: datetime, batch: int, now: datetime,
                 report: PruneReport) -> int:
    with transaction.atomic(using=alias):
        eligible = Run.objects.using(alias).filter(state__in=FINISHED,
                                                   state_changed_at__lt=cutoff)
        folded = folded_through(using=alias)
        if folded is not None:
            eligible = eligible.exclude(id__in=runs_changed_after(folded, using=alias))
        runs = list(eligible.order_by("state_changed_at", "id")
                    .only("id", "state", "version", "queue", "name")[:batch])
        if not runs:
            return 0
        ids = [run.pk for run in runs]
        transitions, _ = Transition.objects.using(alias).filter(run_id__in=ids).delete()
        Run.objects.using(alias).filter(pk__in=ids).delete()
        reason = f"finished before {cutoff.isoformat()}"
        rows = []
        for run in runs:
            run.version += 1  # the deletion is the run's last write
            rows.append(Change(**change_log.change_row(
                run, kind=Change.DELETED, source=run.state, target=None, at=now,
                actor=RETENTION_ACTOR, reason=reason)))
        Change.objects.using(alias).bulk_create(rows)
        change_log.hint_after_commit(alias)
    report.batches += 1
    report.runs += len(runs)
    report.transitions += transitions
    report.by_state.update(run.state for run in runs)
    return len(runs)
