"""The audit trail: one append-only row per committed state change, never pruned."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from .exceptions import TransitionNotAllowed
from .states import RunState


class Transition(models.Model):
    """One committed state change: append-only, never updated or deleted by the application."""

    # No index of its own: `transition_run_order` (run, id) starts with it.
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="transitions",
                            db_index=False)
    from_state = models.CharField(max_length=16, choices=RunState.choices, blank=True)
    to_state = models.CharField(max_length=16, choices=RunState.choices)
    at = models.DateTimeField(default=timezone.now, editable=False)
    actor = models.CharField(max_length=200, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    attempt = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("id",)
        # The run page's timeline: every transition of one run, in order.
        indexes = (
            models.Index(fields=("run", "id"), name="transition_run_order"),
            # The board at a past moment: the newest transitions up to that moment, walked
            # backwards (runs.history.moment).
            models.Index(fields=("at", "id"), name="transition_at"),
        )

    def __str__(self) -> str:
        return f"{self.run_id}: {self.from_state or '∅'} → {self.to_state}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TransitionNotAllowed(f"transition {self.pk} is audit history: never changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise TransitionNotAllowed(f"transition {self.pk} is audit history: never deleted")
