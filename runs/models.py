"""Runs.

`Run.transition_to` is the only code that changes `Run.state`; `Run.amend` is its sibling for
writes that change no state (heartbeats, budgets); both live in `runs.transitions`. Both
compare-and-set on `version`, so a write made from a stale instance is a `TransitionConflict`,
never a silent overwrite. Every committed write to a run — these two, a creation and an admin
edit through `save()` — appends one row to the change log in the same transaction
(`runs.changelog`), which is how boards learn of it.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models, router, transaction
from django.db.models import F, Q
from django.utils import timezone

from .audit import Transition
from .cards import ERROR_SUMMARY_CHARS, LIVE_FIELDS, live_data_from
from .changelog import writer as change_log
from .changelog.models import Change, ChangeReader
from .exceptions import TransitionNotAllowed
from .ids import uuid7
from .lifecycle import SuspendedBy
from .states import LEASE_HOLDING_STATES, RunState
from .transitions import Move, RunWrites

__all__ = ["ERROR_SUMMARY_CHARS", "LIFECYCLE_FIELDS", "LIVE_FIELDS", "Change", "ChangeReader",
           "Move", "Run", "RunQuerySet", "RunState", "Transition", "live_data_from"]

# Written only by transition_to/amend; save() refuses to change them on an existing row.
LIFECYCLE_FIELDS: tuple[str, ...] = (
    "state",
    "version",
    "attempts",
    "next_attempt_at",
    "lease_owner",
    "lease_expires_at",
    "heartbeat_at",
    "progress",
    "result",
    "last_error",
    "suspend_reason",
    "suspended_by",
    "consumed",
    "state_changed_at",
    "started_at",
    "finished_at",
)

class RunQuerySet(models.QuerySet):
    """Read vocabulary for runs."""

    def in_state(self, *states: RunState | str) -> RunQuerySet:
        return self.filter(state__in=[str(s) for s in states])

    def unfinished(self) -> RunQuerySet:
        return self.exclude(state__in=[RunState.COMPLETED, RunState.FAILED, RunState.CANCELED])

    def newest_first(self) -> RunQuerySet:
        return self.order_by("-state_changed_at", "-id")

    def within_budget(self) -> RunQuerySet:
        """Runs whose consumption has reached no limit of their budget, judged in SQL.

        The clock uses it to find budget-suspended runs that may resume without loading every
        suspended run: a run whose budget is still exhausted never fills a clock batch.
        Non-numeric entries (only possible through hand edits) never count as exhausted.
        """
        table = self.model._meta.db_table
        if connections[self.db].vendor == "postgresql":
            exhausted = f"""EXISTS (
                SELECT 1 FROM jsonb_each(CASE WHEN jsonb_typeof("{table}"."budget") = 'object'
                                         THEN "{table}"."budget" ELSE '{{}}'::jsonb END)
                       AS lim(dimension, amount)
                WHERE COALESCE(CASE WHEN jsonb_typeof("{table}"."consumed" -> lim.dimension)
                                         = 'number'
                               THEN ("{table}"."consumed" ->> lim.dimension)::float8 END, 0)
                      >= CASE WHEN jsonb_typeof(lim.amount) = 'number'
                              THEN (lim.amount #>> '{{}}')::float8 END)"""
        else:
            exhausted = f"""EXISTS (
                SELECT 1 FROM json_each("{table}"."budget") AS lim
                WHERE lim.type IN ('integer', 'real')
                  AND COALESCE((SELECT used.value FROM json_each("{table}"."consumed") AS used
                                WHERE used.key = lim.key AND used.type IN ('integer', 'real')),
                               0) >= lim.value)"""
        return self.extra(where=[f"NOT {exhausted}"])


class Run(RunWrites, models.Model):
    """One unit of background work and where it stands in the lifecycle."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    name = models.CharField(max_length=200, help_text="What kind of work this is.")
    queue = models.CharField(max_length=100, default="default")
    payload = models.JSONField(default=dict, blank=True)
    priority = models.IntegerField(default=0, help_text="Higher is leased first.")

    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.READY)
    version = models.PositiveIntegerField(default=1, editable=False)

    scheduled_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    backoff_base_seconds = models.FloatField(default=2.0)
    backoff_factor = models.FloatField(default=2.0)
    backoff_cap_seconds = models.FloatField(default=300.0)
    backoff_jitter = models.FloatField(
        default=0.1, help_text="Fraction (0 to 1) of each delay taken off at random."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    lease_owner = models.CharField(max_length=200, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    lease_seconds = models.PositiveIntegerField(default=30)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(null=True, blank=True)

    result = models.JSONField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    suspend_reason = models.TextField(blank=True, default="")
    suspended_by = models.CharField(
        max_length=16, blank=True, default="", choices=SuspendedBy.CHOICES
    )
    budget = models.JSONField(default=dict, blank=True, help_text="Limit per dimension.")
    consumed = models.JSONField(default=dict, blank=True, help_text="Use per dimension.")

    # Indexed by `run_rerun_of` below, which holds only the reruns.
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns",
        db_index=False,
    )

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    state_changed_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ("-state_changed_at", "-id")
        permissions = (
            ("cancel_run", "Can cancel runs"),
            ("suspend_run", "Can suspend running runs"),
            ("resume_run", "Can resume suspended runs"),
            ("retry_run", "Can retry a backing-off run now"),
            ("rerun_run", "Can rerun finished runs"),
        )
        indexes = (
            # Board columns and the run list filtered by state: "newest N in state S" and
            # keyset pages on (state_changed_at, id) within a state. Also serves per-state
            # counts as an index-only scan on the `state` prefix.
            models.Index(fields=("state", "state_changed_at", "id"), name="run_state_changed"),
            # Board and list filtered by queue: newest N in state S of queue Q.
            models.Index(
                fields=("queue", "state", "state_changed_at", "id"), name="run_queue_state"
            ),
            # Run list with no state filter: keyset pages over all runs.
            models.Index(fields=("state_changed_at", "id"), name="run_changed"),
            # services.lease: ready runs, highest priority first, then oldest (id breaks ties
            # between runs created in the same instant). Partial, so it holds only the ready
            # runs however large the table grows.
            models.Index(
                F("priority").desc(), "created_at", "id", name="run_lease_order",
                condition=Q(state="ready"),
            ),
            # services.lease(queues=[...]): the same order within each queue.
            models.Index(
                "queue", F("priority").desc(), "created_at", "id", name="run_lease_queue_order",
                condition=Q(state="ready"),
            ),
            # The clock (services.tick), one partial index per step: due scheduled runs, lapsed
            # leases of leased and running runs, ended backoffs (and exhausted retry waits),
            # budget-suspended runs.
            models.Index(
                fields=("scheduled_at",), name="run_due_scheduled",
                condition=Q(state="scheduled"),
            ),
            models.Index(
                fields=("lease_expires_at",), name="run_lease_expiry",
                condition=Q(state__in=("leased", "running")),
            ),
            models.Index(
                fields=("next_attempt_at",), name="run_due_retry",
                condition=Q(state="retry_wait"),
            ),
            models.Index(
                fields=("suspended_by",), name="run_suspended",
                condition=Q(state="suspended"),
            ),
            # A finished run's reruns (and SET NULL when it is deleted). Partial: most runs
            # are no rerun, and every insert and non-HOT update of a run writes an entry into
            # each index whose condition it meets (a plain foreign-key index held a NULL per
            # run version).
            models.Index(
                fields=("rerun_of",), name="run_rerun_of",
                condition=Q(rerun_of__isnull=False),
            ),
        )
        constraints = (
            models.CheckConstraint(
                condition=Q(progress__isnull=True) | Q(progress__gte=0, progress__lte=100),
                name="run_progress_0_100",
            ),
            models.CheckConstraint(
                condition=Q(state__in=RunState.values), name="run_state_valid"
            ),
        )

    def __str__(self) -> str:
        return f"{self.name} {self.short_id} ({self.state})"

    def save(self, *args: Any, actor: str = "", reason: str = "", **kwargs: Any) -> None:
        """Save a new run in any state; on an existing run, write only non-lifecycle fields.

        Either way one change-log row goes with it (`actor` and `reason` describe a creation).

        Lifecycle fields (state, version, lease, attempts, …) change only through
        `transition_to`/`amend`. Editing one here is refused, and the UPDATE never names them,
        so saving a stale instance cannot roll a run back to the state it was loaded in.
        """
        loaded = getattr(self, "_loaded_lifecycle", None)
        if loaded is not None and not self._state.adding:
            changed = sorted(n for n, v in loaded.items() if getattr(self, n) != v)
            if "state" in changed:
                raise TransitionNotAllowed(
                    f"run {self.pk} is {loaded['state']}; save() cannot change state to "
                    f"{self.state}: use transition_to() or runs.services",
                    run_id=self.pk, current_state=loaded["state"], target_state=self.state,
                )
            if changed:
                raise TransitionNotAllowed(
                    f"run {self.pk}: save() cannot change lifecycle fields "
                    f"({', '.join(changed)}): use runs.services",
                    run_id=self.pk, current_state=loaded["state"],
                )
            if RunState(loaded["state"]).is_terminal:
                raise TransitionNotAllowed(
                    f"run {self.pk} is {loaded['state']}; a finished run never changes",
                    run_id=self.pk, current_state=loaded["state"],
                )
            requested = kwargs.get("update_fields")
            if requested is not None and set(requested) & set(LIFECYCLE_FIELDS):
                raise TransitionNotAllowed(
                    f"run {self.pk}: save() cannot write lifecycle fields: use runs.services",
                    run_id=self.pk, current_state=loaded["state"],
                )
            if requested is None:
                deferred = self.get_deferred_fields()
                kwargs["update_fields"] = [
                    field.name for field in self._meta.concrete_fields
                    if not field.primary_key and field.name not in LIFECYCLE_FIELDS
                    and field.attname not in deferred
                ]
        alias = kwargs.get("using") or router.db_for_write(Run, instance=self)
        adding = self._state.adding
        with transaction.atomic(using=alias, savepoint=False):
            super().save(*args, **kwargs)
            if adding:
                change_log.append(alias, self, kind=Change.CREATED, source=None,
                                  target=self.state, at=self.created_at, actor=actor,
                                  reason=reason)
            else:
                self._record_edit(alias)
        self._remember_lifecycle()

    def _record_edit(self, alias: str) -> None:
        # An edit of non-lifecycle fields (the admin's form) is a write boards must see: a new
        # version (so clients take the new card) and a change-log row, in the same transaction.
        Run.objects.using(alias).filter(pk=self.pk).update(version=F("version") + 1)
        version, state = (Run.objects.using(alias).filter(pk=self.pk)
                          .values_list("version", "state").get())
        if (state, version) == (self.state, self.version + 1):
            self.version = version  # this instance was current: it still is
        row = change_log.change_row(self, kind=Change.UPDATE, source=state, target=state,
                                    at=timezone.now())
        change_log.insert_row(alias, {**row, "version": version})

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._remember_lifecycle()
        return instance

    def _remember_lifecycle(self) -> None:
        self._loaded_lifecycle = {
            name: self.__dict__[name] for name in LIFECYCLE_FIELDS if name in self.__dict__
        }

    @property
    def short_id(self) -> str:
        return str(self.pk)[-8:] if self.pk else ""

    @property
    def run_state(self) -> RunState:
        return RunState(self.state)

    def refresh_from_db(self, using: str | None = None, fields: Any = None,
                        from_queryset: Any = None) -> None:
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        # What was just read is the new baseline save() compares against.
        loaded = getattr(self, "_loaded_lifecycle", {})
        for name in LIFECYCLE_FIELDS:
            if (fields is None or name in fields) and name in self.__dict__:
                loaded[name] = self.__dict__[name]
        self._loaded_lifecycle = loaded

    # -- what a card shows ------------------------------------------------------------------

    def live_data(self) -> dict[str, Any]:
        """Everything a board card shows, JSON-ready; payload and result are left out."""
        return live_data_from(self.__dict__, last_error=self.last_error)

    @property
    def holds_lease(self) -> bool:
        return RunState(self.state) in LEASE_HOLDING_STATES


# Models kept in their own modules; importing them here registers them with the app:
# bulk operations by filter (run page) and executor tokens (HTTP API).
from .bulk_models import BulkOperation  # noqa: E402,F401

# History rollups, exact totals and the fold's cursor (runs.history).
from .history.models import FoldCursor, Rollup, RollupDelta, StateTotal  # noqa: E402,F401
from .tokens import ExecutorToken  # noqa: E402,F401
