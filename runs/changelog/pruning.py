"""Pruning the change log: rows older than the retention window go, in bounded batches, and
never one that a live reader has not read yet.

Change-log rows exist to bring boards up to date; the audit trail (`Transition`) is the
history and is never pruned. A client that reconnects with a position older than what is
kept simply takes a snapshot.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import connections, router, transaction
from django.utils import timezone

from runs.conf import runboard_setting

from .models import Change, ChangeReader
from .reader import Position

logger = logging.getLogger(__name__)

DEFAULT_RETENTION = timedelta(days=7)
PRUNE_BATCH = 5_000
# A reader row not refreshed for this long belongs to a process that is gone.
READER_STALE_AFTER = timedelta(minutes=5)
# Readers named "fold:…" are folds (runs.history): they build history that cannot be rebuilt
# once the rows are gone, and run from clocks that may be stopped for a while (a deploy, an
# outage), so they hold pruning back far longer than a hub does. A fold left behind for more
# than FOLD_BEHIND_WARNING is logged at each pruning; one silent for FOLD_STALE_AFTER is
# considered abandoned (its history then has a gap, which is better than a log that grows
# forever).
FOLD_PREFIX = "fold:"
FOLD_STALE_AFTER = timedelta(days=30)
FOLD_BEHIND_WARNING = timedelta(days=1)


def retention() -> timedelta:
    days = runboard_setting("CHANGE_LOG_RETENTION_DAYS", None)
    return DEFAULT_RETENTION if days is None else timedelta(days=float(days))


def note_reader(name: str, position: Position) -> None:
    """Record that reader `name` (a hub) has read the log up to `position`."""
    ChangeReader.objects.update_or_create(
        name=name, defaults={"txid": position.txid, "change_id": position.id,
                             "seen_at": timezone.now()})


def forget_reader(name: str) -> None:
    ChangeReader.objects.filter(name=name).delete()


def oldest_reader(*, now: datetime | None = None) -> Position | None:
    """The lowest position among live readers (None when there is none)."""
    now = now or timezone.now()
    positions = []
    for name, txid, change_id, seen_at in ChangeReader.objects.filter(
            seen_at__gte=now - FOLD_STALE_AFTER).values_list("name", "txid", "change_id",
                                                              "seen_at"):
        fold = name.startswith(FOLD_PREFIX)
        if not fold and seen_at < now - READER_STALE_AFTER:
            continue
        if fold and seen_at < now - FOLD_BEHIND_WARNING:
            logger.warning("change-log reader %s last folded at %s: it holds pruning back "
                           "(is any clock running?)", name, seen_at.isoformat())
        positions.append(Position(txid, change_id))
    return min(positions) if positions else None


def _stale_readers(now: datetime):
    hubs = ChangeReader.objects.exclude(name__startswith=FOLD_PREFIX)
    return (hubs.filter(seen_at__lt=now - READER_STALE_AFTER)
            | ChangeReader.objects.filter(seen_at__lt=now - FOLD_STALE_AFTER))


def prune(*, now: datetime | None = None, keep: timedelta | None = None,
          batch: int = PRUNE_BATCH, max_batches: int | None = None) -> int:
    """Delete change-log rows older than `keep` (default: the retention setting) that every
    live reader has read; one short transaction per batch. Returns how many rows went."""
    now = now or timezone.now()
    cutoff = now - (keep if keep is not None else retention())
    floor = oldest_reader(now=now)
    _stale_readers(now).delete()
    alias = router.db_for_write(Change)
    table = connections[alias].ops.quote_name(Change._meta.db_table)
    postgres = connections[alias].vendor == "postgresql"
    ops = connections[alias].ops
    removed, batches = 0, 0
    while max_batches is None or batches < max_batches:
        where, params = ["at < %s"], [ops.adapt_datetimefield_value(cutoff)]
        if floor is not None:
            if postgres:
                where.append("(txid, id) <= (%s::xid8, %s)")
                params += [str(floor.txid), floor.id]
            else:
                where.append("id <= %s")
                params.append(floor.id)
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                f"WHERE {' AND '.join(where)} ORDER BY at LIMIT %s)", [*params, batch])
            deleted = cursor.rowcount
        removed += deleted
        batches += 1
        if deleted < batch:
            break
    return removed
