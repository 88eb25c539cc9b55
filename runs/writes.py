"""The statements of every write to a run — the compare-and-set UPDATE, the audit INSERT and the
change-log INSERT — with their SQL built once per set of columns.

`Run.transition_to` runs on every executor call, so its cost is the product's throughput. The
ORM's `filter().update()` and `create()` spend more time compiling the same statements than
the database spends executing them (measured in `benchmarks/transitions.py`); here the SQL text
is cached per column set and values go through each field's own `get_db_prep_save`, so types,
JSON and time zones are handled exactly as the ORM would. The statements still run on Django's
connection, inside Django's transaction.

On PostgreSQL the writes of a move are one statement: a data-modifying CTE whose UPDATE feeds
both INSERTs, so a lost compare-and-set inserts nothing and a move costs one round trip instead
of three. Several moves in a row (`Run.transition_through`) are still one UPDATE, with one
audit row and one change-log row per move. SQLite has no data-modifying CTEs and no round
trips to save: one statement per row.
"""

from __future__ import annotations

import enum
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from django.db import connections, models
from django.db.models import Field, Model

from . import prepared

AUDIT_COLUMNS = ("run", "from_state", "to_state", "at", "actor", "reason", "attempt")
CHANGE_COLUMNS = ("run_id", "version", "kind", "from_state", "to_state", "queue", "name", "at",
                  "actor", "reason")


# How each column's value becomes a parameter, decided once per column set (a move's
# parameters are prepared on every executor call: deciding per value cost a tenth of a
# worker's CPU per task).
_AS_IS = 0  # str, number, None: what every driver takes (an enum gives its plain value)
_AS_IS_ON_POSTGRESQL = 1  # a UUID or an aware datetime, which Django hands psycopg unchanged
_PREPARE = 2  # anything else goes through the field's own `get_db_prep_save`

PLAIN_FIELDS = (models.CharField, models.TextField, models.IntegerField, models.FloatField)


@lru_cache(maxsize=512)
def _fields(model: type[Model], names: tuple[str, ...]) -> tuple[Field, ...]:
    return tuple(model._meta.get_field(name) for name in names)


def _kind(field: Field, vendor: str) -> int:
    if isinstance(field, PLAIN_FIELDS) and not field.is_relation:
        return _AS_IS
    target = field.target_field if field.is_relation else field
    if vendor == "postgresql" and isinstance(target, (models.UUIDField, models.DateTimeField)):
        return _AS_IS_ON_POSTGRESQL
    return _PREPARE


@lru_cache(maxsize=512)
def _plan(model: type[Model], names: tuple[str, ...], vendor: str
          ) -> tuple[tuple[str, Field, int], ...]:
    return tuple((field.name, field, _kind(field, vendor)) for field in _fields(model, names))


def _params(model: type[Model], names: tuple[str, ...], row: dict[str, Any],
            connection: Any) -> list[Any]:
    params = []
    for name, field, kind in _plan(model, names, connection.vendor):
        value = row[name]
        if isinstance(value, enum.Enum):  # RunState and friends: the plain value
            value = value.value
        if kind == _AS_IS or (kind == _AS_IS_ON_POSTGRESQL and (
                isinstance(value, UUID)
                or (isinstance(value, datetime) and value.tzinfo is not None))):
            params.append(value)
        else:
            params.append(field.get_db_prep_save(value, connection))
    return params


def _quote(alias: str) -> Any:
    return connections[alias].ops.quote_name


@lru_cache(maxsize=512)
def _update_sql(alias: str, model: type[Model], names: tuple[str, ...]) -> str:
    quote = _quote(alias)
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in _fields(model, names))
    return (f"UPDATE {quote(model._meta.db_table)} SET {assignments} "
            f"WHERE {quote(model._meta.pk.column)} = %s AND {quote('state')} = %s "
            f"AND {quote('version')} = %s")


@lru_cache(maxsize=64)
def _insert_sql(alias: str, model: type[Model], names: tuple[str, ...]) -> str:
    quote = _quote(alias)
    columns = ", ".join(quote(field.column) for field in _fields(model, names))
    placeholders = ", ".join(["%s"] * len(names))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"


def _typed_select(alias: str, model: type[Model], names: tuple[str, ...], rows: int = 1,
                  source: str = "moved") -> str:
    """`INSERT INTO t (…) SELECT CAST(%s AS type), … FROM moved [UNION ALL …]`, one SELECT per
    row: a value in a SELECT list has no column to take its type from, so each placeholder is
    cast to its column's type."""
    connection = connections[alias]
    quote = _quote(alias)
    fields = _fields(model, names)
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(f"CAST(%s AS {field.db_type(connection)})" for field in fields)
    selects = " UNION ALL ".join([f"SELECT {values} FROM {source}"] * rows)
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) {selects}"


@lru_cache(maxsize=512)
def _move_sql(alias: str, model: type[Model], names: tuple[str, ...],
              audit_model: type[Model], audits: int, change_model: type[Model],
              changes: int) -> str:
    """PostgreSQL: UPDATE … RETURNING feeding the audit and change-log INSERTs."""
    parts = [f"WITH moved AS ({_update_sql(alias, model, names)} RETURNING 1)"]
    if audits:
        parts.append(f", audited AS ({_typed_select(alias, audit_model, AUDIT_COLUMNS, audits)})")
    parts.append(" " + _typed_select(alias, change_model, CHANGE_COLUMNS, changes))
    return "".join(parts)


def write_move(model: type[Model], alias: str, *, pk: Any, state: str, version: int,
               values: dict[str, Any], audits: tuple[type[Model], list[dict[str, Any]]],
               changes: tuple[type[Model], list[dict[str, Any]]]) -> bool:
    """Compare-and-set the run to `values` if it is still in (`state`, `version`) and, only
    then, insert its audit rows (`AUDIT_COLUMNS`, none for a write that moves nothing) and its
    change-log rows (`CHANGE_COLUMNS`, at least one). True if it moved.

    Call inside a transaction: the writes commit together or not at all.
    """
    connection = connections[alias]
    names = tuple(values)
    where = [model._meta.pk.get_db_prep_save(pk, connection), str(state), version]
    update_params = _params(model, names, values, connection) + where
    audit_model, audit_rows = audits
    change_model, change_rows = changes
    audit_params = [_params(audit_model, AUDIT_COLUMNS, row, connection) for row in audit_rows]
    change_params = [_params(change_model, CHANGE_COLUMNS, row, connection)
                     for row in change_rows]
    with prepared.cursor(connection) as cursor:
        if connection.vendor == "postgresql":
            sql = _move_sql(alias, model, names, audit_model, len(audit_rows), change_model,
                            len(change_rows))
            cursor.execute(sql, update_params + [value for row in audit_params for value in row]
                           + [value for row in change_params for value in row])
            # The statement's row count is the change-log INSERT's: one row per change if the
            # UPDATE matched, none if it did not.
            return cursor.rowcount == len(change_rows)
        cursor.execute(_update_sql(alias, model, names), update_params)
        if cursor.rowcount != 1:
            return False
        for row in audit_params:
            cursor.execute(_insert_sql(alias, audit_model, AUDIT_COLUMNS), row)
        for row in change_params:
            cursor.execute(_insert_sql(alias, change_model, CHANGE_COLUMNS), row)
        return True


@lru_cache(maxsize=64)
def _create_sql(alias: str, model: type[Model], names: tuple[str, ...],
                audit_model: type[Model], change_model: type[Model]) -> str:
    """PostgreSQL: INSERT … RETURNING feeding the audit and change-log INSERTs."""
    return (f"WITH created AS ({_insert_sql(alias, model, names)} RETURNING 1), "
            f"audited AS ({_typed_select(alias, audit_model, AUDIT_COLUMNS, source='created')}) "
            + _typed_select(alias, change_model, CHANGE_COLUMNS, source="created"))


def write_creation(model: type[Model], alias: str, *, values: dict[str, Any],
                   audit: tuple[type[Model], dict[str, Any]],
                   change: tuple[type[Model], dict[str, Any]]) -> None:
    """INSERT a new row of `model` (`values` by field name) with its audit row and its
    change-log row: one statement on PostgreSQL, three on SQLite.

    Call inside a transaction: the three writes commit together or not at all.
    """
    connection = connections[alias]
    names = tuple(values)
    params = _params(model, names, values, connection)
    audit_params = _params(audit[0], AUDIT_COLUMNS, audit[1], connection)
    change_params = _params(change[0], CHANGE_COLUMNS, change[1], connection)
    with prepared.cursor(connection) as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_create_sql(alias, model, names, audit[0], change[0]),
                           params + audit_params + change_params)
            return
        cursor.execute(_insert_sql(alias, model, names), params)
        cursor.execute(_insert_sql(alias, audit[0], AUDIT_COLUMNS), audit_params)
        cursor.execute(_insert_sql(alias, change[0], CHANGE_COLUMNS), change_params)


def insert_change(model: type[Model], alias: str, **row: Any) -> None:
    """INSERT one change-log row (`CHANGE_COLUMNS`) on its own: creations and deletions."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(alias, model, CHANGE_COLUMNS),
                       _params(model, CHANGE_COLUMNS, row, connection))


@lru_cache(maxsize=8)
def _heartbeat_sql(alias: str, model: type[Model], change_model: type[Model]) -> str:
    """PostgreSQL: renew a running run's lease for its holder and log it, in one statement."""
    quote = _quote(alias)
    columns = ", ".join(quote(field.column) for field in model._meta.concrete_fields)
    change_columns = ", ".join(quote(field.column)
                               for field in _fields(change_model, CHANGE_COLUMNS))
    return (
        f"WITH moved AS (UPDATE {quote(model._meta.db_table)} SET "
        f"{quote('heartbeat_at')} = %s, "
        f"{quote('lease_expires_at')} = CAST(%s AS timestamptz) "
        f"+ {quote('lease_seconds')} * INTERVAL '1 second', "
        f"{quote('progress')} = COALESCE(CAST(%s AS smallint), {quote('progress')}), "
        f"{quote('version')} = {quote('version')} + 1 "
        f"WHERE {quote(model._meta.pk.column)} = %s AND {quote('state')} = %s "
        f"AND {quote('lease_owner')} = %s AND {quote('lease_expires_at')} > %s "
        f"RETURNING {columns}), "
        f"logged AS (INSERT INTO {quote(change_model._meta.db_table)} ({change_columns}) "
        f"SELECT {quote(model._meta.pk.column)}, {quote('version')}, %s, {quote('state')}, "
        f"{quote('state')}, {quote('queue')}, {quote('name')}, CAST(%s AS timestamptz), %s, '' "
        f"FROM moved) "
        f"SELECT {columns} FROM moved"
    )


def write_heartbeat(model: type[Model], alias: str, *, pk: Any, state: str, executor: str,
                    now: Any, progress: int | None, change_model: type[Model],
                    kind: str) -> Model | None:
    """PostgreSQL only: if the run is in `state`, leased to `executor` and its lease has not
    lapsed at `now`, record the heartbeat (`heartbeat_at`, the lease renewed by its
    `lease_seconds`, `progress` when given, a new version) and its change-log row in one
    statement, and return the run as written; else write nothing and return None.

    Keyed on the lease rather than the version: a heartbeat derives nothing from the values it
    overwrites, so whatever else changed meanwhile, it is right as long as the lease holds.
    """
    connection = connections[alias]
    params = [now, now, progress, model._meta.pk.get_db_prep_save(pk, connection), str(state),
              executor, now, kind, now, executor]
    found = list(model._default_manager.using(alias).raw(
        _heartbeat_sql(alias, model, change_model), params))
    return found[0] if found else None
