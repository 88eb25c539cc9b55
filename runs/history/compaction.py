"""Compaction: the fold's appended increments (`RollupDelta`) merged into the rollups.

The fold appends a batch's increments per minute and (queue, name) with a plain INSERT: an
upsert of every rollup row they count in (three grains, three dimensions, all time: about four
times the rows) spent most of a batch looking up conflicts in the rollups' unique index
(millions of rows). Compaction pays that once for many batches, after the clock's fold round,
and sums the increments of one key first (consecutive batches hit the same current buckets).
Readers add rollups and deltas in one statement, so they see the same sums before, during and
after a compaction.

Each step deletes the oldest deltas and adds them to the rollups in one transaction. The
DELETE is what claims them: a second compactor running at once blocks on the rows the first
deleted and, once it commits, skips them, so every increment is merged exactly once. Keys are
upserted in key order, so two compactors lock rollup rows in the same order (no deadlock).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connections, router, transaction
from django.utils.dateparse import parse_datetime

from .buckets import ALL_TIME, GRAINS
from .models import ALL, Rollup, RollupDelta
from .upserts import microseconds, upsert

COMPACT_BATCH = 20_000
KEY = ("grain", "queue", "name", "start", "measure", "bucket")
DELTA = ("start", "queue", "name", "measure", "bucket", "count", "total_ms")


def compact(*, batch: int = COMPACT_BATCH, max_batches: int | None = None,
            using: str | None = None) -> int:
    """Merge the appended increments into the rollups, oldest first, `batch` deltas per short
    transaction (at most `max_batches`); return how many deltas were merged."""
    alias = using or router.db_for_write(Rollup)
    merged = batches = 0
    while max_batches is None or batches < max_batches:
        with transaction.atomic(using=alias):
            taken = _take(alias, batch)
            upsert(alias=alias, model=Rollup, keys=KEY, added=("count", "total_ms"),
                   rows=rollup_rows(taken))
        merged += len(taken)
        batches += 1
        if len(taken) < batch:
            break
    return merged


def rollup_rows(deltas: list[tuple]) -> list[tuple]:
    """The rollup rows `deltas` (start in epoch microseconds, then the other `DELTA` columns)
    add to: every grain and dimension and all time, one row per key (an upsert may not touch
    a row twice), in key order."""
    expanded: dict[tuple[int, str, str, int, str, int], list[int]] = {}
    for start, queue, name, measure, bucket, count, total_ms in deltas:
        minute = start // 1_000_000
        for key in (*((grain, dims[0], dims[1], minute - minute % grain, measure, bucket)
                      for grain in GRAINS
                      for dims in ((queue, name), (queue, ALL), (ALL, ALL))),
                    (ALL_TIME, ALL, ALL, 0, measure, bucket)):
            counter = expanded.get(key)
            if counter is None:
                expanded[key] = [count, total_ms]
            else:
                counter[0] += count
                counter[1] += total_ms
    return [(grain, queue, name, start * 1_000_000, measure, bucket, count, total_ms)
            for (grain, queue, name, start, measure, bucket), (count, total_ms)
            in sorted(expanded.items())]


def _take(alias: str, batch: int) -> list[tuple]:
    """Delete the `batch` oldest deltas and return them (start in epoch microseconds)."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    table = quote(RollupDelta._meta.db_table)
    columns = ", ".join(quote(c) for c in DELTA)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id "
                       f"LIMIT %s) RETURNING {columns}", [batch])
        rows = cursor.fetchall()
    return [(_micros(start), *rest) for start, *rest in rows]


def _micros(start: datetime | str) -> int:
    if isinstance(start, str):  # SQLite: the stored text, or a naive datetime (UTC)
        parsed = parse_datetime(start)
        assert parsed is not None
        start = parsed
    return microseconds(start if start.tzinfo else start.replace(tzinfo=UTC))
