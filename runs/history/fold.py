"""The fold: one cursor-driven step that turns change-log rows into rollups and exact totals.

Each call locks its cursor row (`SELECT … FOR UPDATE` on PostgreSQL; SQLite serializes
writers at BEGIN), reads the next rows after it with the commit-safe reader, adds their
increments to `Rollup` / `StateTotal`, records when each run entered its new state, and moves
the cursor, all in one transaction. Two clocks folding at once therefore fold every row
exactly once: the second waits for the first's commit and then reads after the cursor the
first one left.

The cursor is mirrored into the change log's reader table (`fold:<name>`), so change-log
pruning never deletes a row the fold has not read (see `runs.changelog.pruning`).

Latencies (queue wait, run time, dwell per state) need when the run entered the state it is
leaving; the log row says only where it came from. The fold keeps that moment per unfinished
run (`RunEntry`, written as it folds the entering row). When it is missing (a run older than
the fold, or rows of one run read out of version order) it is read from the audit trail: the
run's newest `Transition` into that state up to the move, an index walk on
`transition_run_order`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Count

from runs.audit import Transition
from runs.changelog.models import Change, ChangeReader
from runs.changelog.reader import LogRow, Position, Snapshot, consistent_read, read_after
from runs.models import Run
from runs.states import RunState

from .buckets import ALL_TIME, GRAINS, MINUTE, latency_bucket
from .counts import baseline_of
from .models import ALL, FoldCursor, Rollup, RunEntry, StateTotal

logger = logging.getLogger(__name__)

FOLD_NAME = "history"
READER_PREFIX = "fold:"  # change-log readers with this prefix are folds (see pruning)
FOLD_BATCH = 1_000
IDLE_NOTE_INTERVAL = timedelta(minutes=1)
TERMINAL = frozenset(str(state) for state in RunState if state.is_terminal)
# Rows per multi-row INSERT: SQLite's old limit is 999 bound variables.
CHUNK = {"postgresql": 1_000, "sqlite": 100}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the start of the all-time bucket
Key = tuple[int, str, str, str, int]  # minute start (epoch s), queue, name, measure, bucket


def fold(*, name: str = FOLD_NAME, limit: int = FOLD_BATCH, using: str | None = None) -> int:
    """Fold the next `limit` committed change-log rows; return how many were folded."""
    alias = using or router.db_for_write(Rollup)
    initialize(name=name, using=alias)
    with transaction.atomic(using=alias):
        cursor = (FoldCursor.objects.using(alias).select_for_update().get(name=name))
        position = Position(cursor.txid, cursor.change_id)
        rows = read_after(position, limit=limit, using=alias)
        if not rows:
            # Idle is not behind: keep the reader row fresh so pruning does not warn.
            ChangeReader.objects.using(alias).filter(
                name=READER_PREFIX + name, seen_at__lt=_now() - IDLE_NOTE_INTERVAL,
            ).update(seen_at=_now())
            return 0
        baseline = baseline_of(cursor)
        folding = _Folding(alias, baseline)
        folding.take(rows)
        folding.write()
        reached = rows[-1].position
        if baseline is not None and baseline.passed_by(reached):
            baseline = None
        FoldCursor.objects.using(alias).filter(name=name).update(
            txid=reached.txid, change_id=reached.id, folded_at=_now(),
            baseline=_snapshot_json(baseline) if baseline else None)
        ChangeReader.objects.using(alias).update_or_create(
            name=READER_PREFIX + name,
            defaults={"txid": reached.txid, "change_id": reached.id, "seen_at": _now()})
    return len(rows)


def fold_all(*, name: str = FOLD_NAME, limit: int = FOLD_BATCH,
             max_batches: int | None = None) -> int:
    """Fold until caught up (or `max_batches` batches); return how many rows were folded."""
    folded, batches = 0, 0
    while max_batches is None or batches < max_batches:
        taken = fold(name=name, limit=limit)
        folded += taken
        batches += 1
        if taken < limit:
            break
    return folded


def initialize(*, name: str = FOLD_NAME, using: str | None = None) -> bool:
    """Count the runs once, exactly, before the first fold: the totals start from that
    snapshot and the fold adds only rows the snapshot did not include. True if it counted.

    Safe with several clocks: the cursor row is created once and locked; on PostgreSQL a
    second initializer fails to serialize and simply retries on its next round.
    """
    alias = using or router.db_for_write(Rollup)
    if FoldCursor.objects.using(alias).filter(name=name, initialized=True).exists():
        return False
    FoldCursor.objects.using(alias).bulk_create([FoldCursor(name=name)], ignore_conflicts=True)
    with consistent_read(using=alias, read_only=False) as snapshot:
        cursor = FoldCursor.objects.using(alias).select_for_update().get(name=name)
        if cursor.initialized:
            return False
        counted = (Run.objects.using(alias).order_by().values("queue", "name", "state")
                   .annotate(n=Count("pk")))
        StateTotal.objects.using(alias).all().delete()
        StateTotal.objects.using(alias).bulk_create(
            [StateTotal(queue=row["queue"], name=row["name"], state=row["state"],
                        count=row["n"]) for row in counted], batch_size=500)
        FoldCursor.objects.using(alias).filter(name=name).update(
            initialized=True, baseline=_snapshot_json(snapshot), folded_at=_now())
        # Registered from the start: pruning keeps every row from here on for the fold.
        ChangeReader.objects.using(alias).update_or_create(
            name=READER_PREFIX + name,
            defaults={"txid": cursor.txid, "change_id": cursor.change_id, "seen_at": _now()})
    return True


def _snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    data = asdict(snapshot)
    data["in_progress"] = sorted(snapshot.in_progress)
    return data


def _now() -> datetime:
    return datetime.now(tz=UTC)


class _Folding:
    """The increments of one batch, gathered in memory and written in a few statements."""

    def __init__(self, alias: str, baseline: Snapshot | None):
        self.alias = alias
        self.baseline = baseline
        self.increments: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
        self.totals: dict[tuple[str, str, str], int] = defaultdict(int)
        self.entries: dict[str, tuple[str, datetime, int] | None] = {}
        self.changed_entries: set[str] = set()

    def take(self, rows: Iterable[LogRow]) -> None:
        rows = list(rows)
        self.entries = {
            str(run_id): (state, entered_at, version) for run_id, state, entered_at, version in
            RunEntry.objects.using(self.alias)
            .filter(run_id__in={row.run_id for row in rows if row.kind != Change.UPDATE})
            .values_list("run_id", "state", "entered_at", "version")
        }
        for row in rows:
            self._take(row)

    def _take(self, row: LogRow) -> None:
        counted = self.baseline is None or not self.baseline.includes(row.position)
        source, target = row.from_state, row.to_state
        if row.kind == Change.CREATED:
            self._add(row, "submitted")
            self._add(row, f"in:{target}")
            if counted:
                self.totals[(row.queue, row.name, target)] += 1
            self._enter(row, target)
        elif row.kind == Change.TRANSITION and source != target:
            self._add(row, f"out:{source}")
            self._add(row, f"in:{target}")
            if counted:
                self.totals[(row.queue, row.name, source)] -= 1
                self.totals[(row.queue, row.name, target)] += 1
            entered = self._entered(row)
            if entered is not None:
                milliseconds = max(0, round((row.at - entered).total_seconds() * 1000))
                self._latency(row, f"dwell:{source}", milliseconds)
                if source == RunState.READY and target == RunState.LEASED:
                    self._latency(row, "wait", milliseconds)
                if source == RunState.RUNNING and target in TERMINAL:
                    self._latency(row, "run", milliseconds)
            self._enter(row, target)
        elif row.kind == Change.DELETED:
            self._add(row, f"out:{source}")
            if counted:
                self.totals[(row.queue, row.name, source)] -= 1
            self.entries[row.run_id] = None
            self.changed_entries.add(row.run_id)

    def _add(self, row: LogRow, measure: str, bucket: int = 0, milliseconds: int = 0) -> None:
        minute = int(row.at.timestamp()) // MINUTE * MINUTE
        counter = self.increments[(minute, row.queue, row.name, measure, bucket)]
        counter[0] += 1
        counter[1] += milliseconds

    def _latency(self, row: LogRow, measure: str, milliseconds: int) -> None:
        self._add(row, measure, latency_bucket(milliseconds), milliseconds)

    def _entered(self, row: LogRow) -> datetime | None:
        held = self.entries.get(row.run_id)
        if held is not None and held[0] == row.from_state and held[2] < row.version:
            return held[1]
        # Unknown to the fold, or read out of version order: ask the audit trail.
        return (Transition.objects.using(self.alias)
                .filter(run_id=row.run_id, to_state=row.from_state, at__lte=row.at)
                .order_by("-id").values_list("at", flat=True).first())

    def _enter(self, row: LogRow, state: str) -> None:
        held = self.entries.get(row.run_id)
        if held is not None and held[2] > row.version:
            return  # a newer row of this run was folded first: keep what it recorded
        self.entries[row.run_id] = None if state in TERMINAL else (state, row.at, row.version)
        self.changed_entries.add(row.run_id)

    # -- writing ---------------------------------------------------------------------------------

    def write(self) -> None:
        expanded: dict[tuple[int, str, str, datetime, str, int], list[int]] = defaultdict(
            lambda: [0, 0])
        for (minute, queue, name, measure, bucket), (count, total) in self.increments.items():
            for grain in GRAINS:
                start = datetime.fromtimestamp(minute // grain * grain, tz=UTC)
                for dims in ((queue, name), (queue, ALL), (ALL, ALL)):
                    counter = expanded[(grain, *dims, start, measure, bucket)]
                    counter[0] += count
                    counter[1] += total
            counter = expanded[(ALL_TIME, ALL, ALL, EPOCH, measure, bucket)]
            counter[0] += count
            counter[1] += total
        self._upsert(Rollup, ("grain", "queue", "name", "start", "measure", "bucket"),
                     [(*key, count, total) for key, (count, total) in expanded.items()],
                     ("count", "total_ms"))
        self._upsert(StateTotal, ("queue", "name", "state"),
                     [(*key, delta) for key, delta in self.totals.items() if delta],
                     ("count",))
        gone = [run_id for run_id in self.changed_entries if self.entries.get(run_id) is None]
        if gone:
            RunEntry.objects.using(self.alias).filter(run_id__in=gone).delete()
        kept = [RunEntry(run_id=run_id, state=held[0], entered_at=held[1], version=held[2])
                for run_id in self.changed_entries
                if (held := self.entries.get(run_id)) is not None]
        if kept:
            RunEntry.objects.using(self.alias).bulk_create(
                kept, update_conflicts=True, unique_fields=["run_id"],
                update_fields=["state", "entered_at", "version"])

    def _upsert(self, model: type, keys: tuple[str, ...], rows: list[tuple[Any, ...]],
                added: tuple[str, ...]) -> None:
        """INSERT … ON CONFLICT (keys) DO UPDATE SET column = column + new, for every
        `added` column: counters only ever add (PostgreSQL and SQLite ≥ 3.24)."""
        if not rows:
            return
        connection = connections[self.alias]
        quote = connection.ops.quote_name
        table = quote(model._meta.db_table)
        columns = (*keys, *added)
        fields = [model._meta.get_field(column) for column in columns]
        updates = ", ".join(f"{quote(column)} = {table}.{quote(column)} + excluded.{quote(column)}"
                            for column in added)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # One array per column, whatever the number of rows: a VALUES list of a few
                # thousand rows spent more time in client-side query building and per-value
                # preparation than PostgreSQL spent upserting (230 → see README Benchmarks).
                arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
                cursor.execute(
                    f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "
                    f"SELECT * FROM unnest({arrays}) ON CONFLICT "
                    f"({', '.join(quote(k) for k in keys)}) DO UPDATE SET {updates}",
                    [list(column) for column in zip(*rows, strict=True)])
                return
            size = CHUNK.get(connection.vendor, 100)
            for offset in range(0, len(rows), size):
                chunk = rows[offset:offset + size]
                placeholders = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"]
                                         * len(chunk))
                params = [field.get_db_prep_save(value, connection)
                          for row in chunk for field, value in zip(fields, row, strict=True)]
                cursor.execute(
                    f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "
                    f"VALUES {placeholders} ON CONFLICT "
                    f"({', '.join(quote(k) for k in keys)}) DO UPDATE SET {updates}", params)
