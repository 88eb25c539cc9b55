"""The fold: one cursor-driven step that turns change-log rows into rollups and exact totals.

Each call locks its cursor row (`SELECT … FOR UPDATE` on PostgreSQL; SQLite serializes
writers at BEGIN), reads the next rows after it with the commit-safe reader, appends their
increments per minute and (queue, name) to `RollupDelta` (merged into `Rollup` by
`compaction`), adds them to `StateTotal` and moves the cursor, all in one transaction (and
notes in memory, once it commits, when each run entered its new state). Two clocks folding
at once therefore fold every row exactly once: the second waits for the first's commit and
then reads after the cursor the first one left.

The cursor is mirrored into the change log's reader table (`fold:<name>`), so change-log
pruning never deletes a row the fold has not read (see `runs.changelog.pruning`).

Latencies (queue wait, run time, dwell per state) need when the run entered the state it is
leaving; the log row says only where it came from. The audit trail knows: the run's newest
`Transition` into that state up to the move (an index walk on `transition_run_order`), looked
up for a whole batch in one statement. Each thread also keeps, in memory, the moment every
unfinished run it folded entered its state (`_known`), with the cursor its last batch left:
when its next batch starts from that same cursor, no other clock has folded since and those
moments are exact, so a clock that keeps folding reads the audit trail only for runs it has
not seen move (older than the process, or moved by another clock meanwhile). Nothing of this
is stored: a table of entry moments cost each batch as much as the audit lookups it saved.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Count

from runs.audit import Transition
from runs.changelog.models import Change, ChangeReader
from runs.changelog.reader import Move, Position, Snapshot, consistent_read, read_moves_after
from runs.models import Run
from runs.states import RunState

from .buckets import MINUTE, latency_bucket
from .compaction import compact
from .counts import baseline_of
from .models import FoldCursor, Rollup, RollupDelta, StateTotal
from .upserts import insert, microseconds, moment_of, upsert

logger = logging.getLogger(__name__)

FOLD_NAME = "history"
READER_PREFIX = "fold:"  # change-log readers with this prefix are folds (see pruning)
FOLD_BATCH = 1_000
IDLE_NOTE_INTERVAL = timedelta(minutes=1)
TERMINAL = frozenset(str(state) for state in RunState if state.is_terminal)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the start of the all-time bucket
Key = tuple[int, str, str, str, int]  # minute start (epoch s), queue, name, measure, bucket


# Entry moments are kept for at most this many runs per thread (~250 bytes each); past it the
# thread starts over from the audit trail.
KNOWN_LIMIT = 200_000
Entry = tuple[str, int, int]  # state, entered at (epoch µs), version
_known = threading.local()


def _known_entries(alias: str, cursor: FoldCursor) -> dict[str, Entry]:
    """The entry moments this thread kept, if its last commit left `cursor` where it is (else
    none: another clock folded since, or the batch rolled back)."""
    kept = getattr(_known, "kept", None)
    if kept is None or kept[0] != (alias, cursor.name, cursor.txid, cursor.change_id,
                                   cursor.folded_at):
        _known.kept = None
        return {}
    return kept[1]


def _keep_entries(key: tuple[Any, ...], entries: dict[str, Entry]) -> None:
    _known.kept = (key, entries) if len(entries) <= KNOWN_LIMIT else None


def fold(*, name: str = FOLD_NAME, limit: int = FOLD_BATCH, using: str | None = None) -> int:
    """Fold the next `limit` committed change-log rows; return how many were folded."""
    alias = using or router.db_for_write(Rollup)
    for attempt in range(2):
        with transaction.atomic(using=alias):
            # Locked: a second clock waits here for this one's commit, then reads after it.
            cursor = (FoldCursor.objects.using(alias).select_for_update()
                      .filter(name=name, initialized=True).first())
            if cursor is not None:
                return _fold_after(cursor, alias=alias, limit=limit)
        if attempt == 0:
            # Before the very first fold only (outside a transaction: see `initialize`).
            initialize(name=name, using=alias)
    raise RuntimeError(f"the history fold {name!r} could not be counted")


def _fold_after(cursor: FoldCursor, *, alias: str, limit: int) -> int:
    """Fold up to `limit` rows after the locked `cursor` and move it past them."""
    name = cursor.name
    position = Position(cursor.txid, cursor.change_id)
    rows = read_moves_after(position, limit=limit, using=alias)
    if not rows:
        # Idle is not behind: keep the reader row fresh so pruning does not warn.
        ChangeReader.objects.using(alias).filter(
            name=READER_PREFIX + name, seen_at__lt=_now() - IDLE_NOTE_INTERVAL,
        ).update(seen_at=_now())
        return 0
    baseline = baseline_of(cursor)
    known = _known_entries(alias, cursor)
    _known.kept = None  # until this batch commits
    folding = _Folding(alias, baseline, known)
    folding.take(rows)
    folding.write()
    reached = Position(rows[-1][0], rows[-1][1])
    if baseline is not None and baseline.passed_by(reached):
        baseline = None
    folded_at = _now()
    FoldCursor.objects.using(alias).filter(name=name).update(
        txid=reached.txid, change_id=reached.id, folded_at=folded_at,
        baseline=_snapshot_json(baseline) if baseline else None)
    kept = folding.known_after()
    transaction.on_commit(lambda: _keep_entries(
        (alias, name, reached.txid, reached.id, folded_at), kept), using=alias)
    upsert(alias=alias, model=ChangeReader, keys=("name",),
           rows=[(READER_PREFIX + name, reached.txid, reached.id, microseconds(_now()))],
           replaced=("txid", "change_id", "seen_at"))
    return len(rows)


def folded_through(*, using: str | None = None) -> Position | None:
    """The position up to which every fold has read the change log (the lowest cursor), or
    None when no fold has started: nothing waits on a fold then."""
    alias = using or router.db_for_read(FoldCursor)
    positions = [Position(txid, change_id) for txid, change_id in
                 FoldCursor.objects.using(alias).filter(initialized=True)
                 .values_list("txid", "change_id")]
    return min(positions) if positions else None


def fold_all(*, name: str = FOLD_NAME, limit: int = FOLD_BATCH,
             max_batches: int | None = None) -> int:
    """Fold until caught up (or `max_batches` batches), then merge what the batches appended
    into the rollups (`compaction`); return how many rows were folded."""
    folded, batches = 0, 0
    while max_batches is None or batches < max_batches:
        taken = fold(name=name, limit=limit)
        folded += taken
        batches += 1
        if taken < limit:
            break
    compact()
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


def entered_from_audit(alias: str, moves: list[tuple[str, str, int, int]]
                       ) -> dict[str, Entry]:
    """For each (run id, source state, moved at, version) the moment the run entered that
    state (its newest audit row into it up to the move), as the entry the move leaves from;
    runs without one are left out. One statement on PostgreSQL."""
    if not moves:
        return {}
    connection = connections[alias]
    if connection.vendor != "postgresql":
        found = {}
        for run_id, source, at, _version in moves:
            entered = (Transition.objects.using(alias)
                       .filter(run_id=run_id, to_state=source, at__lte=moment_of(at))
                       .order_by("-id").values_list("at", flat=True).first())
            if entered is not None:
                found[run_id] = microseconds(entered)
    else:
        table = connection.ops.quote_name(Transition._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"""
                SELECT m ->> 0, (SELECT (extract(epoch FROM t.at) * 1000000)::bigint
                                 FROM {table} t
                                 WHERE t.run_id = (m ->> 0)::uuid AND t.to_state = m ->> 1
                                   AND t.at <= timestamptz 'epoch'
                                               + (m ->> 2)::bigint * interval '1 microsecond'
                                 ORDER BY t.id DESC LIMIT 1)
                FROM jsonb_array_elements(%s::jsonb) AS m""", [json.dumps(moves)])
            found = {run_id: entered for run_id, entered in cursor.fetchall()
                     if entered is not None}
    return {run_id: (source, found[run_id], version - 1)
            for run_id, source, _at, version in moves if run_id in found}


class _Folding:
    """The increments of one batch, gathered in memory and written in a few statements.

    Works on plain tuples and integer microseconds (`read_moves_after`): at a thousand rows a
    batch, objects and aware datetimes per row cost more than the writes."""

    def __init__(self, alias: str, baseline: Snapshot | None,
                 known: dict[str, Entry] | None = None):
        self.alias = alias
        self.baseline = baseline
        self.known = known if known is not None else {}  # exact as of the batch's start
        self.increments: dict[Key, list[int]] = {}
        self.totals: dict[tuple[str, str, str], int] = defaultdict(int)
        # run id → (state, entered at in epoch µs, version), None once finished or deleted
        self.entries: dict[str, Entry | None] = {}

    def take(self, rows: list[Move]) -> None:
        # The entered-at of each run's first move here, from memory or the audit trail; the
        # rows before it in this batch (if any) record the rest as they are taken.
        first: dict[str, Move] = {}
        for row in rows:
            if row[4] != Change.UPDATE:
                first.setdefault(row[2], row)
        known = self.known
        self.entries = {run_id: known[run_id] for run_id in first if run_id in known}
        self.entries.update(entered_from_audit(self.alias, [
            (run_id, row[5], row[9], row[3]) for run_id, row in first.items()
            if run_id not in known and row[4] == Change.TRANSITION and row[5] != row[6]]))
        for row in rows:
            self._take(row)

    def _take(self, row: Move) -> None:
        txid, change_id, run_id, version, kind, source, target, queue, name, at = row
        if kind == Change.UPDATE:
            return
        counted = (self.baseline is None
                   or not self.baseline.includes(Position(txid, change_id)))
        # Every increment of this row lands in one minute: the bucket math is done once.
        add = self._adder(at // 60_000_000 * MINUTE, queue, name)
        if kind == Change.CREATED:
            add("submitted")
            add(f"in:{target}")
            if counted:
                self.totals[(queue, name, target)] += 1
            self._enter(run_id, version, target, at)
        elif kind == Change.TRANSITION and source != target:
            add(f"out:{source}")
            add(f"in:{target}")
            if counted:
                self.totals[(queue, name, source)] -= 1
                self.totals[(queue, name, target)] += 1
            entered = self._entered(run_id, version, source, at)
            if entered is not None:
                # As `round(timedelta.total_seconds() * 1000)` would round it.
                milliseconds = max(0, round((at - entered) / 1_000_000 * 1000))
                bucket = latency_bucket(milliseconds)
                add(f"dwell:{source}", bucket, milliseconds)
                if source == RunState.READY and target == RunState.LEASED:
                    add("wait", bucket, milliseconds)
                if source == RunState.RUNNING and target in TERMINAL:
                    add("run", bucket, milliseconds)
            self._enter(run_id, version, target, at)
        elif kind == Change.DELETED:
            add(f"out:{source}")
            if counted:
                self.totals[(queue, name, source)] -= 1
            self.entries[run_id] = None

    def _adder(self, minute: int, queue: str, name: str) -> Callable[..., None]:
        increments = self.increments

        def add(measure: str, bucket: int = 0, milliseconds: int = 0) -> None:
            key = (minute, queue, name, measure, bucket)
            counter = increments.get(key)
            if counter is None:
                increments[key] = [1, milliseconds]
            else:
                counter[0] += 1
                counter[1] += milliseconds
        return add

    def _entered(self, run_id: str, version: int, source: str, at: int) -> int | None:
        held = self.entries.get(run_id)
        if held is not None and held[0] == source and held[2] < version:
            return held[1]
        # Unknown to the fold, or read out of version order: ask the audit trail.
        entered = (Transition.objects.using(self.alias)
                   .filter(run_id=run_id, to_state=source, at__lte=moment_of(at))
                   .order_by("-id").values_list("at", flat=True).first())
        return None if entered is None else microseconds(entered)

    def _enter(self, run_id: str, version: int, state: str, at: int) -> None:
        held = self.entries.get(run_id)
        if held is not None and held[2] > version:
            return  # a newer row of this run was folded first: keep what it recorded
        self.entries[run_id] = None if state in TERMINAL else (state, at, version)

    # -- writing ---------------------------------------------------------------------------------

    def known_after(self) -> dict[str, Entry]:
        """The entry moment of every unfinished run this thread has seen move, as of the end
        of this batch."""
        known = self.known
        for run_id, held in self.entries.items():
            if held is None:
                known.pop(run_id, None)
            else:
                known[run_id] = held
        return known

    def write(self) -> None:
        # Appended per minute and (queue, name), not upserted into every rollup they count
        # in: compaction does that for many batches at once (see `compaction`).
        insert(alias=self.alias, model=RollupDelta, rows=[
            (minute * 1_000_000, queue, name, measure, bucket, count, total)
            for (minute, queue, name, measure, bucket), (count, total)
            in self.increments.items()],
            columns=("start", "queue", "name", "measure", "bucket", "count", "total_ms"))
        upsert(alias=self.alias, model=StateTotal, keys=("queue", "name", "state"),
               rows=[(*key, delta) for key, delta in self.totals.items() if delta],
               added=("count",))
