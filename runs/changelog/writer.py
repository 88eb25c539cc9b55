"""Appending to the change log, always inside the transaction of the write it records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction

from runs.writes import insert_change

from . import hints
from .models import Change


def change_row(run: Any, *, kind: str, source: str | None, target: str | None, at: datetime,
               actor: str = "", reason: str = "") -> dict[str, Any]:
    """The change-log row for `run` as it is now (its new version), ready for `write_move`."""
    return {
        "run_id": run.pk, "version": run.version, "kind": kind,
        "from_state": str(source) if source else "", "to_state": str(target) if target else "",
        "queue": run.queue, "name": run.name, "at": at, "actor": actor or "",
        "reason": reason or "",
    }


def hint_after_commit(alias: str) -> None:
    """Wake readers once the surrounding transaction commits (never for a rollback)."""
    transaction.on_commit(hints.after_commit, using=alias, robust=True)


def append(alias: str, run: Any, *, kind: str, source: str | None, target: str | None,
           at: datetime, actor: str = "", reason: str = "") -> None:
    """Record a write that `write_move` did not (a creation, a deletion)."""
    insert_row(alias, change_row(run, kind=kind, source=source, target=target, at=at,
                                 actor=actor, reason=reason))


def insert_row(alias: str, row: dict[str, Any]) -> None:
    """Insert a row built by `change_row` and hint readers after commit."""
    insert_change(Change, alias, **row)
    hint_after_commit(alias)
