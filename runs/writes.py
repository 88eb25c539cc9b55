"""The two statements of every move — the compare-and-set UPDATE and the audit INSERT — with
their SQL built once per set of columns.

`Run.transition_to` runs on every executor call, so its cost is the product's throughput. The
ORM's `filter().update()` and `create()` spend more time compiling the same two statements
than the database spends executing them (measured in `benchmarks/transitions.py`); here the SQL
text is cached per column set and values go through each field's own `get_db_prep_save`, so
types, JSON and time zones are handled exactly as the ORM would. The statements still run on
Django's connection, inside Django's transaction.
"""

from __future__ import annotations

import enum
from functools import lru_cache
from typing import Any

from django.db import connections, models
from django.db.models import Field, Model

AUDIT_COLUMNS = ("run", "from_state", "to_state", "at", "actor", "reason", "attempt")


# Fields whose Python value is already what every driver takes (str, number, None): skipping
# their `get_db_prep_save` is a third of the CPU a move spends outside the database.
PLAIN_FIELDS = (models.CharField, models.TextField, models.IntegerField, models.FloatField)


@lru_cache(maxsize=512)
def _fields(model: type[Model], names: tuple[str, ...]) -> tuple[Field, ...]:
    return tuple(model._meta.get_field(name) for name in names)


@lru_cache(maxsize=512)
def _needs_prep(model: type[Model], names: tuple[str, ...]) -> tuple[bool, ...]:
    return tuple(not isinstance(field, PLAIN_FIELDS) or field.is_relation
                 for field in _fields(model, names))


def _params(model: type[Model], names: tuple[str, ...], row: dict[str, Any],
            connection: Any) -> list[Any]:
    params = []
    for field, prep in zip(_fields(model, names), _needs_prep(model, names), strict=True):
        value = row[field.name]
        if isinstance(value, enum.Enum):  # RunState and friends: the plain value
            value = value.value
        params.append(field.get_db_prep_save(value, connection) if prep else value)
    return params


@lru_cache(maxsize=512)
def _update_sql(alias: str, model: type[Model], columns: tuple[str, ...]) -> str:
    quote = connections[alias].ops.quote_name
    assignments = ", ".join(f"{quote(column)} = %s" for column in columns)
    return (f"UPDATE {quote(model._meta.db_table)} SET {assignments} "
            f"WHERE {quote(model._meta.pk.column)} = %s AND {quote('state')} = %s "
            f"AND {quote('version')} = %s")


@lru_cache(maxsize=16)
def _insert_sql(alias: str, model: type[Model]) -> str:
    quote = connections[alias].ops.quote_name
    columns = ", ".join(quote(field.column) for field in _fields(model, AUDIT_COLUMNS))
    placeholders = ", ".join(["%s"] * len(AUDIT_COLUMNS))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"


def compare_and_set(model: type[Model], alias: str, *, pk: Any, state: str, version: int,
                    values: dict[str, Any]) -> bool:
    """UPDATE the row to `values` if it is still in (`state`, `version`); True if it was."""
    connection = connections[alias]
    names = tuple(values)
    params = _params(model, names, values, connection)
    params += [model._meta.pk.get_db_prep_save(pk, connection), str(state), version]
    columns = tuple(field.column for field in _fields(model, names))
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(alias, model, columns), params)
        return cursor.rowcount == 1


def insert_audit(model: type[Model], alias: str, **row: Any) -> None:
    """INSERT one audit row (`AUDIT_COLUMNS`), without asking for its id back."""
    connection = connections[alias]
    params = _params(model, AUDIT_COLUMNS, row, connection)
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(alias, model), params)
