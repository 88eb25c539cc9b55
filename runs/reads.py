"""The reads of every executor call — a run by id, a lease's candidates — with their SQL built
once (the counterpart of `writes.py`).

Each executor verb reads its run by id and each lease reads its candidates. For these small
SELECTs the ORM spends about five times longer building and compiling the statement and
converting its row than the database spends running it (1.0 against 0.2 ms of CPU per read
by id, measured beside `benchmarks/api_executor_cycle.py`). Here the SQL text is cached per
model and shape; rows become instances through the model's own `from_db`, each column through
the converters the ORM would apply, so the instances are the ORM's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from django.db import connections
from django.db.models import Model

from . import prepared

Converter = Callable[[Any, Any, Any], Any]


@lru_cache(maxsize=64)
def _select(alias: str, model: type[Model]) -> str:
    quote = connections[alias].ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(f"{table}.{quote(field.column)}" for field in model._meta.concrete_fields)
    return f"SELECT {columns} FROM {table}"


@lru_cache(maxsize=64)
def _converters(alias: str, model: type[Model]) -> tuple[tuple[int, Any, tuple[Converter, ...]],
                                                         ...]:
    """(column index, its expression, its converters) for each column that has any."""
    connection = connections[alias]
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(
            connection)
        if converters:
            found.append((index, column, tuple(converters)))
    return tuple(found)


def _instances(model: type[Model], alias: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
    connection = connections[alias]
    names = [field.attname for field in model._meta.concrete_fields]
    converters = _converters(alias, model)
    instances = []
    for row in rows:
        values = list(row)
        for index, column, functions in converters:
            for convert in functions:
                values[index] = convert(values[index], column, connection)
        instances.append(model.from_db(alias, names, values))
    return instances


@lru_cache(maxsize=64)
def _by_pk_sql(alias: str, model: type[Model]) -> str:
    quote = connections[alias].ops.quote_name
    return (f"{_select(alias, model)} WHERE {quote(model._meta.db_table)}."
            f"{quote(model._meta.pk.column)} = %s")


def by_pk(model: type[Model], alias: str, pk: Any) -> Any:
    """The instance with primary key `pk`, or None. A `pk` the field cannot take raises what
    the ORM's `get(pk=…)` raises (`ValidationError` for a malformed UUID)."""
    connection = connections[alias]
    value = model._meta.pk.get_db_prep_value(pk, connection, prepared=False)
    with prepared.cursor(connection) as cursor:
        cursor.execute(_by_pk_sql(alias, model), [value])
        rows = cursor.fetchall()
    found = _instances(model, alias, rows)
    return found[0] if found else None


@lru_cache(maxsize=256)
def _candidates_sql(alias: str, model: type[Model], state: str, paused_model: type[Model],
                    queue_count: int | None, limit: int, lock: bool) -> str:
    connection = connections[alias]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    paused = quote(paused_model._meta.db_table)
    # The state is written into the statement, not bound: a prepared statement's generic
    # plan cannot use a partial index (WHERE state = 'ready') for `state = $1`.
    if not state.isidentifier():
        raise ValueError(f"not a state: {state!r}")
    # NOT IN, not NOT EXISTS: PostgreSQL plans NOT EXISTS as an anti-join, which it
    # estimated to keep one row, so it read and sorted every ready run per lease (at a
    # million runs with 50,000 ready: 80-206 ms) instead of walking `run_lease_order` to the
    # first one it may take (0.05 ms). A hashed NOT IN is a filter on that walk. (A paused
    # queue's name is its primary key, never NULL, so NOT IN means what NOT EXISTS meant.)
    where = [f"{table}.{quote('state')} = '{state}'",
             f"{table}.{quote('queue')} NOT IN (SELECT {paused}.{quote('queue')} "
             f"FROM {paused})"]
    order = (f"ORDER BY {{0}}.{quote('priority')} DESC, {{0}}.{quote('created_at')} ASC, "
             f"{{0}}.{quote('id')} ASC LIMIT {int(limit)}")
    locking = " FOR NO KEY UPDATE SKIP LOCKED" if lock else ""
    if queue_count and queue_count > 1 and connection.vendor == "postgresql":
        # Several queues: each walks its own part of `run_lease_queue_order` (LATERAL), and
        # the first `limit` of all of them are taken. One walk of `run_lease_order` filtered
        # by queue read every ready run of other queues when these had none (16 ms at
        # 50,000 ready). Up to `limit` runs per queue stay locked until the transaction ends.
        queue_column = f"{table}.{quote('queue')}"
        per_queue = (f"{_select(alias, model)} WHERE {' AND '.join(where)} "
                     f"AND {queue_column} = wanted.queue "
                     f"{order.format(table)}{locking}")
        wanted = ", ".join(["%s"] * queue_count)
        return (f"SELECT candidate.* FROM unnest(ARRAY[{wanted}]::text[]) AS wanted(queue) "
                f"CROSS JOIN LATERAL ({per_queue}) AS candidate "
                f"{order.format('candidate')}")
    if queue_count is not None:
        where.append(f"{table}.{quote('queue')} IN ({', '.join(['%s'] * queue_count)})")
    return f"{_select(alias, model)} WHERE {' AND '.join(where)} {order.format(table)}{locking}"


def lease_candidates(model: type[Model], alias: str, *, state: str, paused_model: type[Model],
                     queues: Sequence[str] | None, limit: int) -> list[Any]:
    """Up to `limit` runs in `state` outside the queues `paused_model` lists (and inside
    `queues` when given): higher priority first, then oldest. Where the database can, they
    are locked FOR NO KEY UPDATE SKIP LOCKED until the surrounding transaction ends (the lock
    an UPDATE that keeps the key takes: it does not block the foreign-key checks of audit rows
    other transactions insert for these runs)."""
    connection = connections[alias]
    lock = connection.features.has_select_for_update_skip_locked
    queues = sorted(set(queues)) if queues else None  # a queue named twice is walked once
    sql = _candidates_sql(alias, model, str(state), paused_model,
                          len(queues) if queues else None, limit, lock)
    with prepared.cursor(connection) as cursor:
        cursor.execute(sql, list(queues or ()))
        rows = cursor.fetchall()
    return _instances(model, alias, rows)
