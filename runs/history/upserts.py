"""The few set-based statements the fold writes with: many rows in one round trip.

On PostgreSQL each statement takes its rows as one JSON parameter (`jsonb_array_elements`):
Django's psycopg cursors bind on the client, and rendering a few thousand values one by one
into array literals cost the fold more than PostgreSQL spent upserting them. SQLite gets
multi-row VALUES lists in chunks below its old 999-variable limit.

Timestamps travel as integer microseconds since the epoch, both ways: parsing and formatting
aware datetimes cost more than anything else the fold does per row, and integers are exact.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, models

# Rows per multi-row INSERT on SQLite: its old limit is 999 bound variables.
SQLITE_CHUNK = 100
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def microseconds(moment: datetime) -> int:
    """`moment` as integer microseconds since the epoch (exact)."""
    return (moment - EPOCH) // MICROSECOND


def moment_of(micros: int) -> datetime:
    """The aware datetime `micros` microseconds after the epoch (exact)."""
    return EPOCH + timedelta(microseconds=micros)


def _json(values: Sequence[Any]) -> str:
    return json.dumps(values, separators=(",", ":"))


def _from_json(connection: Any, field: Any, element: str) -> str:
    """SQL turning a JSON element (text) into `field`'s column type (PostgreSQL)."""
    if isinstance(field, models.DateTimeField):
        return f"timestamptz 'epoch' + ({element})::bigint * interval '1 microsecond'"
    return f"({element})::{field.db_type(connection)}"


def upsert(*, alias: str, model: type, keys: Sequence[str], rows: Sequence[Sequence[Any]],
           added: Sequence[str] = (), replaced: Sequence[str] = ()) -> None:
    """INSERT `rows` (values of `keys`, then `added`, then `replaced`; timestamps in epoch
    microseconds); where a row with the same `keys` exists, add the `added` columns to it and
    overwrite the `replaced` ones (PostgreSQL and SQLite ≥ 3.24). `rows` must not repeat a
    key."""
    quote = connections[alias].ops.quote_name
    table = quote(model._meta.db_table)
    updates = ", ".join(
        [f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in added]
        + [f"{quote(c)} = excluded.{quote(c)}" for c in replaced])
    conflict = f" ON CONFLICT ({', '.join(quote(k) for k in keys)}) DO UPDATE SET {updates}"
    insert(alias=alias, model=model, columns=(*keys, *added, *replaced), rows=rows,
           suffix=conflict)


def insert(*, alias: str, model: type, columns: Sequence[str], rows: Sequence[Sequence[Any]],
           suffix: str = "") -> None:
    """INSERT `rows` (values of `columns`; timestamps in epoch microseconds), then `suffix`
    (an ON CONFLICT clause), in one statement on PostgreSQL."""
    if not rows:
        return
    connection = connections[alias]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    fields = [model._meta.get_field(column) for column in columns]
    into = f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            select = ("SELECT " + ", ".join(
                _from_json(connection, field, f"r ->> {i}") for i, field in enumerate(fields))
                + " FROM jsonb_array_elements(%s::jsonb) AS r")
            cursor.execute(f"{into}{select}{suffix}", [_json(rows)])
            return
        for offset in range(0, len(rows), SQLITE_CHUNK):
            chunk = rows[offset:offset + SQLITE_CHUNK]
            placeholders = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"]
                                     * len(chunk))
            params = [field.get_db_prep_save(
                moment_of(value) if isinstance(field, models.DateTimeField) else value,
                connection) for row in chunk for field, value in zip(fields, row, strict=True)]
            cursor.execute(f"{into}VALUES {placeholders}{suffix}", params)
