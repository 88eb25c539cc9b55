"""The tables the fold writes: rollups per bucket, the increments appended since their last
compaction, exact totals per (queue, name, state), and the fold's cursor."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

# The "every queue" / "every name" dimension of a rollup row. A real run always has a name
# and a queue (services refuse empty ones), so "" never collides with one.
ALL = ""


class Rollup(models.Model):
    """One counter of one bucket: how many events of `measure` (and their summed duration)
    fell into [start, start + grain) for one queue and run name.

    Measures: `in:<state>` / `out:<state>` (moves into and out of a state: the cumulative
    flow and the exact counts of a past minute), `submitted`, and the latency histograms
    `wait` (ready → leased), `run` (running → finished) and `dwell:<state>` (time spent in a
    state), one row per log-scaled `bucket` (see `buckets`). Counters only ever add, so a
    fold batch is one upsert of increments.
    """

    grain = models.PositiveIntegerField(help_text="Bucket width in seconds.")
    start = models.DateTimeField()
    queue = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=200, blank=True)
    measure = models.CharField(max_length=32)
    bucket = models.SmallIntegerField(default=0)
    count = models.BigIntegerField(default=0)
    total_ms = models.BigIntegerField(default=0)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("grain", "queue", "name", "start", "measure", "bucket"),
                name="rollup_key"),
        )
        indexes = (
            # A run name across every queue: the unique key serves (grain, queue, …).
            models.Index(fields=("grain", "name", "start"), name="rollup_by_name"),
            # Rollup retention deletes the oldest buckets of a grain, every queue and name.
            models.Index(fields=("grain", "start"), name="rollup_by_start"),
        )

    def __str__(self) -> str:
        return f"{self.grain}s {self.start} {self.queue}/{self.name} {self.measure}"


class RollupDelta(models.Model):
    """Increments the fold appended since the last compaction, per minute and (queue, name)
    only: `compaction.compact` adds each to the ten rollup rows it counts in (every grain, the
    (queue, all) and (all, all) dimensions, all time) and deletes it; readers add them to the
    rollups meanwhile (`counts.rollup_rows`).

    Append-only, with no key but the id: a plain INSERT of a quarter of the rows costs a
    fraction of the upsert's conflict lookups in the rollups' unique index (millions of rows).
    The same key may appear many times; every reader sums. The table holds a few seconds of
    folds (the clock compacts after each round), but compaction leaves dead rows behind until
    a vacuum: readers find theirs by `start` on an index, which skips dead entries once one
    scan has met them, where a scan of the table read every dead page (migration `0010` also
    has autovacuum clean it after a fixed number of rows, however small the table).
    """

    id = models.BigAutoField(primary_key=True)
    start = models.DateTimeField(help_text="The minute the increments fell into.")
    queue = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    measure = models.CharField(max_length=32)
    bucket = models.SmallIntegerField(default=0)
    count = models.BigIntegerField(default=0)
    total_ms = models.BigIntegerField(default=0)

    class Meta:
        indexes = (models.Index(fields=("start",), name="rollup_delta_start"),)

    def __str__(self) -> str:
        return f"+{self.count} {self.start} {self.queue}/{self.name} {self.measure}"


class StateTotal(models.Model):
    """Exact number of runs per (queue, name, state) as of the fold's cursor: the count
    checkpoint that boards and past moments start from."""

    queue = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    state = models.CharField(max_length=16)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("queue", "name", "state"), name="state_total_key"),
        )

    def __str__(self) -> str:
        return f"{self.queue}/{self.name} {self.state}: {self.count}"


class FoldCursor(models.Model):
    """How far one fold consumer has read the change log; advanced in the transaction that
    writes the rollups, so a row is folded exactly once whichever clock folds it.

    `baseline` is the snapshot the totals were first counted at (`Snapshot` fields): rows it
    already includes are folded into the rollups but not into the totals. Cleared once the
    cursor has passed it.
    """

    name = models.CharField(max_length=100, primary_key=True)
    txid = models.BigIntegerField(default=0)
    change_id = models.BigIntegerField(default=0)
    initialized = models.BooleanField(default=False)
    baseline = models.JSONField(null=True, blank=True)
    folded_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} at {self.txid}.{self.change_id}"
