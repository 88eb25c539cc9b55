"""Pausing queues: a paused queue keeps its runs, and `services.lease` hands none of them out.

Two tables. `QueuePause` is the current state: one row per paused queue (a queue with no row
runs normally), so the lease's candidate query leaves their runs out with a hashed NOT IN on
a tiny table, a filter on its walk of the ready runs' index (`runs/reads.py`). `QueueEvent`
is the audit trail: who paused or resumed which queue, when and why; append-only, written in
the same transaction as the change it records, like `Transition` for runs.

A pause takes effect for every lease that starts after it commits; a lease already running
when it commits may still hand out the run it has picked (the same as a run canceled while an
executor leases it: the executor learns on its next call).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from .exceptions import InvalidInput, QueueAlreadyPaused, QueueNotFound, QueueNotPaused
from .models import Run

QUEUE_MAX = Run._meta.get_field("queue").max_length
REASON_MAX = 500
PAUSE_PERMISSION = "runs.pause_queue"


class QueuePause(models.Model):
    """A queue that is paused now. No row: the queue runs."""

    queue = models.CharField(max_length=QUEUE_MAX, primary_key=True)
    paused_at = models.DateTimeField(default=timezone.now)
    paused_by = models.CharField(max_length=200, blank=True, default="")
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ("queue",)
        permissions = (("pause_queue", "Can pause and resume queues"),)

    def __str__(self) -> str:
        return f"{self.queue} (paused by {self.paused_by or 'someone'})"


class QueueEvent(models.Model):
    """One pause or resume of a queue: append-only, never updated or deleted."""

    PAUSE = "pause"
    RESUME = "resume"
    ACTIONS = ((PAUSE, "Paused"), (RESUME, "Resumed"))

    queue = models.CharField(max_length=QUEUE_MAX)
    action = models.CharField(max_length=8, choices=ACTIONS)
    at = models.DateTimeField(default=timezone.now, editable=False)
    actor = models.CharField(max_length=200, blank=True, default="")
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ("-id",)
        indexes = (
            # The newest events of one queue (its history), and of all queues (by id).
            models.Index(fields=("queue", "id"), name="queue_event_order"),
        )

    def __str__(self) -> str:
        return f"{self.queue}: {self.action} by {self.actor or 'someone'}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise InvalidInput(f"queue event {self.pk} is audit history: never changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise InvalidInput(f"queue event {self.pk} is audit history: never deleted")


# -- selectors ----------------------------------------------------------------------------------


def paused_queue_names() -> list[str]:
    """Names of the paused queues: one query over a table holding only paused queues."""
    return list(QueuePause.objects.order_by().values_list("queue", flat=True))


def recent_queue_events(*, limit: int = 20) -> list[QueueEvent]:
    """The newest pauses and resumes of every queue, newest first (primary key order)."""
    return list(QueueEvent.objects.order_by("-id")[:limit])


# -- services -----------------------------------------------------------------------------------


def _clean(queue: Any, reason: Any) -> tuple[str, str]:
    if not isinstance(queue, str) or not queue.strip() or len(queue) > QUEUE_MAX:
        raise InvalidInput(f"a queue needs a name of 1 to {QUEUE_MAX} characters, not {queue!r}")
    if not isinstance(reason, str) or len(reason) > REASON_MAX:
        raise InvalidInput(f"a reason is text of at most {REASON_MAX} characters")
    return queue, reason.strip()


def _queue_exists(queue: str) -> bool:
    # One probe of the queue-led index (`run_queue_state`).
    return Run.objects.filter(queue=queue).exists()


@transaction.atomic
def pause_queue(*, queue: str, actor: str, reason: str = "",
                now: datetime | None = None) -> QueuePause:
    """Pause a queue that has runs: `services.lease` skips it until it is resumed."""
    queue, reason = _clean(queue, reason)
    now = now or timezone.now()
    current = QueuePause.objects.filter(queue=queue).first()
    if current is not None:
        raise QueueAlreadyPaused(
            f"queue {queue} is already paused (by {current.paused_by or 'someone'} "
            f"at {current.paused_at.isoformat()})", queue=queue)
    if not _queue_exists(queue):
        raise QueueNotFound(f"no queue {queue}: no run was ever submitted to it", queue=queue)
    try:
        with transaction.atomic():  # a savepoint: two operators may pause it at the same time
            pause = QueuePause.objects.create(queue=queue, paused_at=now, paused_by=actor,
                                              reason=reason)
    except IntegrityError:
        raise QueueAlreadyPaused(f"queue {queue} was paused by someone else just now",
                                 queue=queue) from None
    QueueEvent.objects.create(queue=queue, action=QueueEvent.PAUSE, at=now, actor=actor,
                              reason=reason)
    return pause


@transaction.atomic
def resume_queue(*, queue: str, actor: str, reason: str = "",
                 now: datetime | None = None) -> QueueEvent:
    """Resume a paused queue: its ready runs are leasable again at once."""
    queue, reason = _clean(queue, reason)
    # Deleting is the compare-and-set: of two concurrent resumes exactly one deletes the row.
    deleted, _ = QueuePause.objects.filter(queue=queue).delete()
    if not deleted:
        if _queue_exists(queue):
            raise QueueNotPaused(f"queue {queue} is not paused", queue=queue)
        raise QueueNotFound(f"no queue {queue}: no run was ever submitted to it", queue=queue)
    return QueueEvent.objects.create(queue=queue, action=QueueEvent.RESUME,
                                     at=now or timezone.now(), actor=actor, reason=reason)
