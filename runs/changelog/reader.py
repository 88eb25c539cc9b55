"""Reading the change log in commit order, from a cursor, without ever skipping a row.

A sequence number is handed out at INSERT, not at COMMIT: with `WHERE id > cursor` a row whose
transaction commits after a later id's is skipped for good. So:

- **PostgreSQL**: each row stores the writing transaction's `pg_current_xact_id()` (xid8).
  Readers take only rows below the oldest transaction still running,
  `txid < pg_snapshot_xmin(pg_current_snapshot())`, in `(txid, id)` order after the cursor
  pair. Every transaction below that watermark has ended, so no row can still appear below
  it; rows of one transaction commit together. One index range scan on `(txid, id)`. The cost:
  a transaction left open anywhere in the cluster holds every reader back (hence
  `idle_in_transaction_session_timeout` in the settings). `(txid, id)` order is "nothing
  skipped", not strict commit order: consumers keep per-run versions.
- **SQLite**: one writer at a time (every write takes the lock at BEGIN) and AUTOINCREMENT ids,
  so id order is commit order; `txid` is always 0.

A `Position` is a cursor into that order, `"<txid>.<id>"` on the wire: opaque to clients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.db import connections, router, transaction
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime

from .models import Change


@dataclass(frozen=True, order=True)
class Position:
    """A place in the log: every row at or before it has been taken into account."""

    txid: int = 0
    id: int = 0

    def token(self) -> str:
        return f"{self.txid}.{self.id}"

    @classmethod
    def parse(cls, token: Any) -> Position | None:
        """The position a client sent back, or None when it is not one we could have issued."""
        if not isinstance(token, str) or len(token) > 48:
            return None
        txid, dot, change_id = token.partition(".")
        if not dot or not txid.isdigit() or not change_id.isdigit():
            return None
        return cls(int(txid), int(change_id))


ORIGIN = Position()


@dataclass(frozen=True)
class LogRow:
    """One change as readers see it."""

    position: Position
    run_id: str
    version: int
    kind: str
    from_state: str
    to_state: str
    queue: str
    name: str
    at: datetime
    actor: str
    reason: str


COLUMNS = "id, run_id, version, kind, from_state, to_state, queue, name, at, actor, reason"
# The txid as a number, under a name of its own: an output column named `txid` would be what
# `ORDER BY txid` sorts by (PostgreSQL resolves ORDER BY names to output columns first), so the
# cast would be sorted instead of the `(txid, id)` index being walked — every read would scan
# and sort all rows after the cursor (seen catching up on 100,000 rows).
_TXID = "txid::text::bigint AS position_txid"
_ORDERED = "ORDER BY txid, id"
_WATERMARK = "txid < pg_snapshot_xmin(pg_current_snapshot())"


def _alias() -> str:
    return router.db_for_read(Change)


def _table(alias: str) -> str:
    return connections[alias].ops.quote_name(Change._meta.db_table)


def _aware(value: Any) -> datetime:
    # SQLite hands back text or naive datetimes (stored in UTC); PostgreSQL aware ones.
    if isinstance(value, str):
        value = parse_datetime(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _rows(cursor: Any) -> list[LogRow]:
    return [
        LogRow(position=Position(int(txid), int(change_id)),
               # PostgreSQL hands back UUIDs, SQLite 32 hex digits.
               run_id=str(run_id if isinstance(run_id, UUID) else UUID(str(run_id))),
               version=version, kind=kind, from_state=source, to_state=target, queue=queue,
               name=name, at=_aware(at), actor=actor, reason=reason)
        for txid, change_id, run_id, version, kind, source, target, queue, name, at, actor,
        reason in cursor.fetchall()
    ]


def _after(alias: str, columns: str, position: Position, limit: int,
           until: Position | None) -> tuple[str, list[Any]]:
    """The query for up to `limit` committed rows after `position`, `columns` first."""
    table = _table(alias)
    if connections[alias].vendor == "postgresql":
        bound = "AND (txid, id) <= (%s::xid8, %s) " if until is not None else ""
        return (f"SELECT {_TXID}, {columns} FROM {table} "
                f"WHERE (txid, id) > (%s::xid8, %s) {bound}AND {_WATERMARK} {_ORDERED} LIMIT %s",
                [str(position.txid), position.id,
                 *([str(until.txid), until.id] if until is not None else []), limit])
    bound = "AND id <= %s " if until is not None else ""
    return (f"SELECT 0, {columns} FROM {table} WHERE id > %s {bound}ORDER BY id LIMIT %s",
            [position.id, *([until.id] if until is not None else []), limit])


def read_after(position: Position, *, limit: int, until: Position | None = None,
               using: str | None = None) -> list[LogRow]:
    """Up to `limit` committed rows after `position` (and at or before `until`), in order."""
    alias = using or _alias()
    with connections[alias].cursor() as cursor:
        cursor.execute(*_after(alias, COLUMNS, position, limit, until))
        return _rows(cursor)


# What a move is to a consumer that only counts it: (txid, id, run id, version, kind, from
# state, to state, queue, name, at in microseconds since the epoch).
Move = tuple[int, int, str, int, str, str, str, str, str, int]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def read_moves_after(position: Position, *, limit: int, using: str | None = None) -> list[Move]:
    """`read_after` as plain tuples, for a consumer of thousands of rows (the history fold):
    making a `LogRow`, a UUID and an aware datetime of each row cost more than the query."""
    alias = using or _alias()
    if connections[alias].vendor == "postgresql":
        columns = ("id, run_id::text, version, kind, from_state, to_state, queue, name, "
                   "(extract(epoch FROM at) * 1000000)::bigint")
        with connections[alias].cursor() as cursor:
            cursor.execute(*_after(alias, columns, position, limit, None))
            return cursor.fetchall()
    return [(row.position.txid, row.position.id, row.run_id, row.version, row.kind,
             row.from_state, row.to_state, row.queue, row.name,
             (row.at - _EPOCH) // _MICROSECOND)
            for row in read_after(position, limit=limit, using=alias)]


def head(*, using: str | None = None) -> Position:
    """The newest position a reader can take now: nothing at or before it can still appear."""
    alias = using or _alias()
    table = _table(alias)
    with connections[alias].cursor() as cursor:
        if connections[alias].vendor == "postgresql":
            cursor.execute(f"SELECT {_TXID}, id FROM {table} WHERE {_WATERMARK} "
                           "ORDER BY txid DESC, id DESC LIMIT 1")
        else:
            cursor.execute(f"SELECT 0, id FROM {table} ORDER BY id DESC LIMIT 1")
        found = cursor.fetchone()
    return Position(int(found[0]), int(found[1])) if found else ORIGIN


def is_retained(position: Position, *, using: str | None = None) -> bool:
    """Whether every row after `position` is still in the log (pruning deletes oldest first,
    so it is enough that the row at `position` itself is still there)."""
    if position.id == 0:
        return False
    query = Change.objects.using(using or _alias()).filter(id=position.id)
    if position.txid and connections[query.db].vendor == "postgresql":
        query = query.extra(where=["txid = %s::xid8"], params=[str(position.txid)])
    return query.exists()


def runs_changed_after(position: Position, *, using: str | None = None) -> QuerySet:
    """The `run_id`s of the rows after `position`, as a subquery: a reader at `position` has
    not read these runs' latest changes. Reads only the log's tail after `position` (its
    `(txid, id)` index), so it is cheap for a reader that keeps up."""
    alias = using or _alias()
    query = Change.objects.using(alias).values("run_id")
    if connections[alias].vendor == "postgresql":
        return query.extra(where=["(txid, id) > (%s::xid8, %s)"],
                           params=[str(position.txid), position.id])
    return query.filter(id__gt=position.id)


def held_back(position: Position, *, using: str | None = None) -> bool:
    """Whether committed rows after `position` wait above the watermark: a transaction older
    than they are is still open somewhere on the server, and they become readable the moment it
    ends — which sends no hint, so a reader should look again soon. Always False on SQLite."""
    alias = using or _alias()
    if connections[alias].vendor != "postgresql":
        return False
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {_table(alias)} "
                       "WHERE (txid, id) > (%s::xid8, %s))",
                       [str(position.txid), position.id])
        return bool(cursor.fetchone()[0])


def newest_at(*, using: str | None = None) -> datetime | None:
    """When the newest committed row was written (the log lag's reference)."""
    return (Change.objects.using(using or _alias()).order_by("-at")
            .values_list("at", flat=True).first())


# -- reading something else at an exact position --------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Which log rows a consistent read (`consistent_read`) already reflects.

    PostgreSQL: the transaction snapshot (`xmin:xmax:xip`), so a row is included exactly when
    its transaction was visible to that read. SQLite: every row up to the newest id then.
    """

    xmin: int = 0
    xmax: int = 0
    in_progress: frozenset[int] = frozenset()
    last_id: int = 0
    postgres: bool = False

    def includes(self, position: Position) -> bool:
        if not self.postgres:
            return position.id <= self.last_id
        if position.txid < self.xmin:
            return True
        return position.txid < self.xmax and position.txid not in self.in_progress

    def passed_by(self, position: Position) -> bool:
        """True once every row after `position` is certainly not included: the snapshot has
        nothing more to say and can be forgotten."""
        if not self.postgres:
            return position.id >= self.last_id
        return position.txid >= self.xmax


@contextlib.contextmanager
def consistent_read(*, using: str | None = None, read_only: bool = True) -> Iterator[Snapshot]:
    """A read-only transaction whose queries all see one moment, and which log rows that
    moment includes: counts read inside it plus the moves of the rows it does not include are
    exact by construction.

    PostgreSQL: REPEATABLE READ (one snapshot for the whole transaction). SQLite: a transaction
    (writers are serialized, so nothing commits in between). `read_only=False` lets the
    transaction also write what it derived from that moment (the history fold's first totals).
    Inside a transaction that is already open (a test's, or a caller's), the isolation level
    can no longer be chosen: the read then shares that transaction's, and is consistent only if
    it is REPEATABLE READ or nothing else commits meanwhile.
    """
    alias = using or _alias()
    connection = connections[alias]
    # Connect first: a connection opened inside the block (or taken from the pool) runs its
    # setup queries there, and SET TRANSACTION must come before any query.
    connection.ensure_connection()
    outer = connection.in_atomic_block
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if not outer:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
                               + (", READ ONLY" if read_only else ""))
            cursor.execute("SELECT pg_current_snapshot()::text")
            xmin, xmax, xip = cursor.fetchone()[0].split(":")
            yield Snapshot(xmin=int(xmin), xmax=int(xmax), postgres=True,
                           in_progress=frozenset(int(x) for x in xip.split(",") if x))
        else:
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {_table(alias)}")
            yield Snapshot(last_id=int(cursor.fetchone()[0]))
