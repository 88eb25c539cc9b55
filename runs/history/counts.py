"""Exact counts per state from the fold's totals: now (the board's cold path) and at any past
minute (the board at a past moment, the cumulative-flow chart).

The totals (`StateTotal`) are exact as of the fold's cursor. Now = totals + the moves of the
log rows after the cursor (a short tail: the fold runs every few seconds). A past minute =
totals minus the moves folded into rollups from that minute on (hour rows where whole hours fit,
minute rows for the rest): a few hundred rows for a month, never the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from django.db import connections, router
from django.db.models import Q, QuerySet, Sum

from runs.changelog.models import Change
from runs.changelog.reader import Position, Snapshot
from runs.states import RunState

from .buckets import HOUR, MINUTE, ceil_to, floor_to
from .models import ALL, FoldCursor, Rollup, RollupDelta, StateTotal
from .pruning import precision_at

STATES = tuple(str(state) for state in RunState)
# Beyond this many unfolded rows the fold is not running: callers count another way.
TAIL_LIMIT = 2_000


class HistoryUnavailable(Exception):
    """The fold has not counted yet, or is too far behind to answer exactly."""

    code = "history_unavailable"


def zero() -> dict[str, int]:
    return dict.fromkeys(STATES, 0)


def _totals(queue: str, name: str, *, substring: bool) -> dict[str, int]:
    rows = StateTotal.objects.all()
    if queue:
        rows = rows.filter(queue=queue)
    if name:
        rows = rows.filter(name__icontains=name) if substring else rows.filter(name=name)
    counts = zero()
    for state, total in rows.order_by().values_list("state").annotate(n=Sum("count")):
        counts[state] = counts.get(state, 0) + int(total)
    return counts


def rollup_rows(grain: int, queue: str, name: str, *, substring: bool = False,
                model: type[Rollup] | type[RollupDelta] = Rollup) -> QuerySet:
    """The rollup rows of one grain that a (queue, name) filter reads, each event once:
    the all-queues/all-names rows, one queue's all-names rows, or per-name rows.

    With `model=RollupDelta`, the increments not yet compacted into those rows (see `summed`):
    per minute and (queue, name), so every grain reads the same rows (a minute lies wholly
    inside each coarser bucket, and all time) and the "all" dimensions are their sums."""
    if model is RollupDelta:
        rows = RollupDelta.objects.all()
        if name:
            rows = rows.filter(name__icontains=name) if substring else rows.filter(name=name)
        return rows.filter(queue=queue) if queue else rows
    rows = model.objects.filter(grain=grain)
    if not name:
        return rows.filter(queue=queue or ALL, name=ALL)
    rows = rows.filter(name__icontains=name) if substring else rows.filter(name=name)
    rows = rows.exclude(name=ALL)
    return rows.filter(queue=queue) if queue else rows.exclude(queue=ALL)


def summed(query: Callable[[type[Rollup] | type[RollupDelta]], QuerySet]) -> QuerySet:
    """`query` over the rollups and over the increments not yet compacted into them, in one
    statement (UNION ALL), so a compaction committing meanwhile is seen whole or not at all.
    The same key may come back twice: callers add."""
    return query(Rollup).union(query(RollupDelta), all=True)


def apply_moves(counts: dict[str, int], moves: Iterable[tuple[str, int]], sign: int) -> None:
    """Add (sign=1) or take back (sign=-1) `in:`/`out:` counters to per-state counts."""
    for measure, count in moves:
        kind, _, state = measure.partition(":")
        if kind == "in":
            counts[state] = counts.get(state, 0) + sign * count
        elif kind == "out":
            counts[state] = counts.get(state, 0) - sign * count


def _moves_since(moment: datetime, queue: str, name: str, *, substring: bool,
                 grain: int = MINUTE) -> list[tuple[str, int]]:
    """Every folded move stamped at or after `moment` (a whole `grain` bucket), summed per
    measure: hour rows where whole hours fit, `grain` rows for the rest."""
    whole_hours = ceil_to(moment, HOUR)
    flow = Q(measure__startswith="in:") | Q(measure__startswith="out:")
    parts = [
        rollup_rows(HOUR, queue, name, substring=substring).filter(
            flow, start__gte=whole_hours),
        rollup_rows(grain, queue, name, substring=substring).filter(
            flow, start__gte=moment, start__lt=whole_hours),
        # Increments not compacted yet are per minute: every one from `moment` on.
        rollup_rows(grain, queue, name, substring=substring, model=RollupDelta).filter(
            flow, start__gte=moment),
    ]
    # One flat UNION ALL (one statement, see `summed`): nested unions lose their ALL on SQLite.
    grouped = [rows.order_by().values_list("measure").annotate(n=Sum("count"))
               for rows in parts]
    return [(m, int(n)) for m, n in grouped[0].union(*grouped[1:], all=True)]


def baseline_of(cursor: FoldCursor) -> Snapshot | None:
    """The snapshot the cursor's totals were first counted at, while the cursor is before it."""
    if not cursor.baseline:
        return None
    return Snapshot(**{**cursor.baseline,
                       "in_progress": frozenset(cursor.baseline["in_progress"])})


def _cursor() -> FoldCursor:
    cursor = FoldCursor.objects.filter(initialized=True).order_by("name").first()
    if cursor is None:
        raise HistoryUnavailable("the history has not been counted yet (no fold has run)")
    return cursor


def _tail(cursor: FoldCursor, queue: str, name: str, *, substring: bool,
          with_queue: bool = False) -> list[Any]:
    """The log rows after the fold's cursor that this transaction sees (no watermark: inside
    a consistent read every visible row is either folded or here)."""
    alias = router.db_for_read(Change)
    table = connections[alias].ops.quote_name(Change._meta.db_table)
    position = Position(cursor.txid, cursor.change_id)
    if connections[alias].vendor == "postgresql":
        txid = "txid::text::bigint"
        where, params = "(txid, id) > (%s::xid8, %s)", [str(position.txid), position.id]
    else:
        txid, where, params = "0", "id > %s", [position.id]
    if queue:
        where += " AND queue = %s"
        params.append(queue)
    with connections[alias].cursor() as db:
        extra = ", queue" if with_queue else ""
        db.execute(f"SELECT kind, from_state, to_state, name, {txid}, id{extra} FROM {table} "
                   f"WHERE {where} LIMIT %s", [*params, TAIL_LIMIT + 1])
        rows = db.fetchall()
    if len(rows) > TAIL_LIMIT:
        raise HistoryUnavailable(f"the history fold is more than {TAIL_LIMIT} rows behind")
    baseline = baseline_of(cursor)
    if baseline is not None:  # the totals' first count already has these
        rows = [r for r in rows if not baseline.includes(Position(int(r[4]), int(r[5])))]
    if name:
        wanted = name.casefold()
        rows = [r for r in rows if (wanted in r[3].casefold() if substring else r[3] == name)]
    return rows


def counts_now(*, queue: str = "", name: str = "", substring: bool = True) -> dict[str, int]:
    """Exact runs per state now: the fold's totals plus the unfolded tail of the log.

    Call inside `consistent_read()` when the answer must match a log position. Raises
    `HistoryUnavailable` when the fold has not counted yet or lags far behind.
    """
    cursor = _cursor()
    counts = _totals(queue, name, substring=substring)
    for kind, source, target, *_ in _tail(cursor, queue, name, substring=substring):
        if kind in (Change.CREATED, Change.TRANSITION, Change.DELETED):
            if source:
                counts[source] -= 1
            if target:
                counts[target] += 1
    return counts


def counts_at(moment: datetime, *, queue: str = "", name: str = "",
              substring: bool = False) -> dict[str, int]:
    """Exact runs per state just before `moment` (floored to its minute, or to the finest
    grain rollup retention still keeps there; see `counted_moment`): every move stamped
    earlier counted, none from then on, as far as the fold has read."""
    grain = precision_at(moment)
    moment = floor_to(moment, grain)
    _cursor()
    counts = _totals(queue, name, substring=substring)
    apply_moves(counts, _moves_since(moment, queue, name, substring=substring, grain=grain),
                -1)
    return counts


def counted_moment(moment: datetime) -> datetime:
    """The moment `counts_at(moment)` is exact at: its minute while minute rows are kept
    there, else its ten minutes, else its hour."""
    return floor_to(moment, precision_at(moment))


def history_begins() -> datetime | None:
    """The first minute the rollups hold: before it, past counts are the counts at it."""
    firsts = [model.objects.filter(grain=MINUTE).order_by("start")
              .values_list("start", flat=True).first() for model in (Rollup, RollupDelta)]
    return min((first for first in firsts if first is not None), default=None)


def counts_by_queue() -> dict[tuple[str, str], int]:
    """Exact runs per (queue, state) now, zero states left out (the /metrics gauge)."""
    cursor = _cursor()
    counts: dict[tuple[str, str], int] = {}
    for queue, state, total in (StateTotal.objects.order_by().values_list("queue", "state")
                                .annotate(n=Sum("count"))):
        counts[(queue, state)] = int(total)
    for kind, source, target, _name, _txid, _id, queue in _tail(cursor, "", "", substring=False,
                                                                 with_queue=True):
        if kind in (Change.CREATED, Change.TRANSITION, Change.DELETED):
            if source:
                counts[(queue, source)] = counts.get((queue, source), 0) - 1
            if target:
                counts[(queue, target)] = counts.get((queue, target), 0) + 1
    return {key: n for key, n in counts.items() if n}
