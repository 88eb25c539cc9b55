"""The hot statements — a move, a run by id, a lease's candidates, a submission — as prepared
statements on PostgreSQL.

Django's psycopg cursors bind parameters on the client: each execution sends the whole text and
PostgreSQL parses and plans it again. For a move's CTE that planning took 0.2 to 0.3 ms against
0.3 ms of execution (EXPLAIN ANALYZE beside `benchmarks/tasks.py`): three such statements per
task. psycopg keeps prepared statements per connection, but only on server-side binding
cursors, and Django turns server-side binding on for every query or none
(`OPTIONS["server_side_binding"]`), which not every ORM query survives. These statements are
SQL we write ourselves (`runs/writes.py`, `runs/reads.py`), so they, and only they, run on a
server-binding cursor of Django's own connection: inside Django's transaction, with its errors
wrapped as Django's and its query log kept (`CaptureQueriesContext` still sees them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper


class _Prepared:
    """The part of a DB-API cursor the writers and readers use: execute, rowcount, fetchall."""

    def __init__(self, connection: BaseDatabaseWrapper, cursor: Any) -> None:
        self._connection = connection
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any]) -> None:
        connection = self._connection
        connection.validate_no_broken_transaction()
        started = time.monotonic()
        try:
            with connection.wrap_database_errors:
                self._cursor.execute(sql, params, prepare=True)
        finally:
            if connection.queries_logged:
                connection.queries_log.append({
                    "sql": f"{sql} -- prepared, parameters {list(params)!r}",
                    "time": f"{time.monotonic() - started:.3f}",
                })

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchall(self) -> list[tuple[Any, ...]]:
        with self._connection.wrap_database_errors:
            return self._cursor.fetchall()


@contextmanager
def cursor(connection: BaseDatabaseWrapper) -> Iterator[Any]:
    """A cursor whose statements PostgreSQL prepares once per connection; Django's own cursor
    on other databases (SQLite plans cheaply and caches statements itself)."""
    if connection.vendor != "postgresql":
        with connection.cursor() as plain:
            yield plain
        return
    import psycopg

    connection.validate_thread_sharing()
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as raw:
        yield _Prepared(connection, raw)
