"""The record of one bulk action by filter: the frozen set of ids it may touch, and what happened.

Kept apart from `runs.models` (the lifecycle core) and imported at its end so Django registers
it with the `runs` app.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from .ids import uuid7


class BulkOperation(models.Model):
    """A previewed bulk action: the exact ids to act on, frozen at preview, then its outcomes.

    The preview stores the eligible ids server-side (up to the cap, 10,000 by default: about
    400 KB of JSON), so the confirm acts on exactly that set and never on runs that appeared
    or started matching afterwards.
    """

    class Status(models.TextChoices):
        PREVIEWED = "previewed", "Previewed"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="run_bulk_operations")
    action = models.CharField(max_length=32)
    filter = models.JSONField(default=dict, help_text="The run list filter, in URL spelling.")
    reason = models.TextField(blank=True, default="")
    run_ids = models.JSONField(default=list, help_text="Eligible run ids frozen at preview.")
    matched = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(
        default=list, help_text="Skipped at preview: [reason, count] pairs, lifecycle order.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PREVIEWED)
    outcomes = models.JSONField(default=dict, help_text="Run id → outcome, filled chunk by chunk.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    progressed_at = models.DateTimeField(null=True, blank=True,
                                         help_text="When the last chunk was recorded.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.action} {len(self.run_ids)} runs ({self.status})"
