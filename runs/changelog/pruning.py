"""Pruning the change log: rows older than the retention window go, in bounded batches, and
never one that a live reader has not read yet.

Change-log rows exist to bring boards up to date; the audit trail (`Transition`) is the
history and is never pruned. A client that reconnects with a position older than what is
kept simply takes a snapshot.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connections, router, transaction
from django.utils import timezone

from runs.conf import runboard_setting

from .models import Change, ChangeReader
from .reader import Position

DEFAULT_RETENTION = timedelta(days=7)
PRUNE_BATCH = 5_000
# A reader row not refreshed for this long belongs to a process that is gone.
READER_STALE_AFTER = timedelta(minutes=5)


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
    live = ChangeReader.objects.filter(seen_at__gte=now - READER_STALE_AFTER)
    positions = [Position(txid, change_id) for txid, change_id in
                 live.values_list("txid", "change_id")]
    return min(positions) if positions else None


def prune(*, now: datetime | None = None, keep: timedelta | None = None,
          batch: int = PRUNE_BATCH, max_batches: int | None = None) -> int:
    """Delete change-log rows older than `keep` (default: the retention setting) that every
    live reader has read; one short transaction per batch. Returns how many rows went."""
    now = now or timezone.now()
    cutoff = now - (keep if keep is not None else retention())
    floor = oldest_reader(now=now)
    ChangeReader.objects.filter(seen_at__lt=now - READER_STALE_AFTER).delete()
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
