"""The change-log table and the table of readers that pruning must not overtake."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from runs.states import RunState


class Change(models.Model):
    """One committed write to a run: enough to move a board's counts and find its card.

    Append-only. On PostgreSQL the table also has a `txid xid8 DEFAULT pg_current_xact_id()`
    column and an index on `(txid, id)` (migration `0005_change_log`, raw SQL because Django
    has no xid8 field): an id is handed out at INSERT, not at COMMIT, so readers order by the
    writing transaction and stop below the oldest one still running (see `reader`). The run is
    referenced by value, not by a foreign key: a change outlives a pruned run.
    """

    CREATED = "created"
    TRANSITION = "transition"
    UPDATE = "update"
    DELETED = "deleted"
    KINDS = ((CREATED, "created"), (TRANSITION, "transition"), (UPDATE, "update"),
             (DELETED, "deleted"))

    id = models.BigAutoField(primary_key=True)
    run_id = models.UUIDField()
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=KINDS)
    from_state = models.CharField(max_length=16, choices=RunState.choices, blank=True)
    to_state = models.CharField(max_length=16, choices=RunState.choices, blank=True)
    # Queue and name never change for a run: with them a hub decides which board filters a
    # row moves without reading the run (which may be gone).
    queue = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=200, blank=True, default="")
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ("id",)
        indexes = (
            # Pruning walks the oldest rows; "newest row" (lag) reads the other end.
            models.Index(fields=("at",), name="change_at"),
        )

    def __str__(self) -> str:
        return f"#{self.pk} {self.run_id} v{self.version} {self.kind}"


class ChangeReader(models.Model):
    """Where a live hub has read the log up to; pruning keeps every row after the lowest.

    Each server process's hub upserts its row every few seconds; a row not refreshed for
    `STALE_AFTER` belongs to a process that is gone and no longer holds pruning back.
    """

    name = models.CharField(max_length=200, primary_key=True)
    txid = models.BigIntegerField(default=0)
    change_id = models.BigIntegerField(default=0)
    seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} at {self.txid}.{self.change_id}"
