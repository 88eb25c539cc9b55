"""The guarded writes of a run: the only code that changes `Run.state`.

`transition_to` (and `transition_through`, several moves in a row as one write) checks each
move against the lifecycle (`runs.lifecycle.plan_transition`) and compare-and-sets the row on
(state, version) in one transaction with an audit row and a change-log row per move; `amend`
is its sibling for writes that change no state (heartbeats, budgets); `insert_audited` creates
a run with its first audit and change-log rows. A write from a stale instance is a
`TransitionConflict`, never a silent overwrite. The SQL is in `runs.writes`; `Run` gets these
methods from `RunWrites`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Self

from django.db import router, transaction
from django.utils import timezone

from .audit import Transition
from .changelog import writer as change_log
from .changelog.models import Change
from .exceptions import RunNotFound, TransitionConflict, TransitionNotAllowed
from .lifecycle import check_changes, plan_transition
from .states import RunState
from .writes import write_creation, write_move


class Move(NamedTuple):
    """One step of `Run.transition_through`: where to, why, and the fields the caller sets."""

    target: RunState | str
    reason: str = ""
    changes: Mapping[str, Any] = {}


class RunWrites:
    """`Run`'s writes (see the module's docstring); the fields are `Run`'s own."""

    def insert_audited(self, *, actor: str = "", reason: str = "") -> None:
        """Insert this new run with its first audit row (from nothing to its state) and its
        change-log row: what `save()` and `Transition.objects.create()` write, in one statement
        on PostgreSQL and with SQL built once (submissions come as fast as executors finish)."""
        if not self._state.adding:
            raise TransitionNotAllowed(f"run {self.pk} exists already: it is inserted once",
                                       run_id=self.pk, current_state=self.state)
        alias = router.db_for_write(type(self), instance=self)
        fields = self._meta.concrete_fields
        values = {field.name: field.pre_save(self, True) for field in fields}
        audit = {"run": self.pk, "from_state": "", "to_state": self.state,
                 "at": self.created_at, "actor": actor, "reason": reason,
                 "attempt": self.attempts}
        change = change_log.change_row(self, kind=Change.CREATED, source=None,
                                       target=self.state, at=self.created_at, actor=actor,
                                       reason=reason)
        with transaction.atomic(using=alias, savepoint=False):
            write_creation(type(self), alias, values=values, audit=(Transition, audit),
                           change=(Change, change))
            change_log.hint_after_commit(alias)
        self._state.adding, self._state.db = False, alias
        self._remember_lifecycle()

    def transition_to(
        self,
        target: RunState | str,
        *,
        actor: str | None = None,
        reason: str = "",
        now: datetime | None = None,
        **changes: Any,
    ) -> Self:
        """Move this run to `target` if the lifecycle allows it now; return the run refreshed.

        Compare-and-set on (state, version) in one transaction with the audit row and the
        change-log row; readers are hinted after commit. Raises `TransitionNotAllowed` (table
        or guard) or `TransitionConflict` (the row moved on since this instance was loaded);
        either way nothing is written.
        """
        return self.transition_through([Move(target, reason, changes)], actor=actor, now=now)

    def transition_through(self, moves: Sequence[Move], *, actor: str | None = None,
                           now: datetime | None = None) -> Self:
        """Make several moves in a row (ready → leased → running) as one write.

        Each move is checked against the table and its guard on the run as the moves before
        it left it, and gets its own audit row and change-log row (its own version), exactly
        as if made one by one; the row itself is written once, by one compare-and-set. If any
        move is refused, nothing is written and this instance is as it was.
        """
        now = now or timezone.now()
        before = dict(self.__dict__)
        source = RunState(self.state)
        values: dict[str, Any] = {}
        steps: list[tuple[RunState, RunState, str, int]] = []
        try:
            for move in moves:
                target = RunState(move.target)
                step_from = RunState(self.state)
                planned = plan_transition(self, target, reason=move.reason, now=now,
                                          changes=dict(move.changes))
                for name, value in planned.items():
                    setattr(self, name, value)
                values.update(planned)
                steps.append((step_from, target, move.reason, self.attempts))
        except Exception:
            self._restore(before)
            raise
        try:
            self._compare_and_set(values, now=now, actor=actor or "", source=source,
                                  first_version=before["version"], steps=steps)
        except Exception:
            self._restore(before)
            raise
        self._remember_lifecycle()
        return self

    def _restore(self, before: dict[str, Any]) -> None:
        self.__dict__.clear()
        self.__dict__.update(before)

    def amend(self, *, actor: str | None = None, now: datetime | None = None,
              **changes: Any) -> Self:
        """Write fields that change no state (heartbeat, progress, budget) with the same
        compare-and-set and change-log row as a move, and no audit row."""
        check_changes(changes, state=self.run_state, verb="amend")
        if self.run_state.is_terminal:
            raise TransitionNotAllowed(
                f"run {self.pk} is {self.state}; a finished run never changes",
                run_id=self.pk, current_state=str(self.state),
            )
        now = now or timezone.now()
        values = {**changes, "version": self.version + 1}
        self._compare_and_set(values, now=now, actor=actor or "", source=self.run_state,
                              first_version=self.version, steps=None)
        for name, value in values.items():
            setattr(self, name, value)
        self._remember_lifecycle()
        return self

    def _compare_and_set(self, values: dict[str, Any], *, now: datetime, actor: str,
                         source: RunState, first_version: int,
                         steps: list[tuple[RunState, RunState, str, int]] | None) -> None:
        """Write `values` if the row is still at (`source`, `first_version`), with an audit row
        and a change-log row per step of `steps` (one change-log row of an update when None).
        """
        # No savepoint: nothing inside can fail halfway except a database error, which must
        # doom any surrounding transaction anyway. A lost compare-and-set writes nothing, so
        # the block ends normally and the conflict is raised after it; callers such as
        # `services.lease` catch it and go on inside their own transaction. That saves two
        # round trips (SAVEPOINT, RELEASE) per move made inside an outer transaction.
        alias = self._state.db or router.db_for_write(type(self), instance=self)
        audits: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for number, (step_from, step_to, reason, attempt) in enumerate(
                steps or [(source, source, "", self.attempts)], start=1):
            if steps is not None:
                audits.append({"run": self.pk, "from_state": step_from, "to_state": step_to,
                               "at": now, "actor": actor, "reason": reason,
                               "attempt": attempt})
            change = change_log.change_row(
                self, kind=Change.TRANSITION if steps is not None else Change.UPDATE,
                source=step_from, target=step_to, at=now, actor=actor, reason=reason)
            change["version"] = first_version + number
            changes.append(change)
        with transaction.atomic(using=alias, savepoint=False):
            moved = write_move(type(self), alias, pk=self.pk, state=source, version=first_version,
                               values=values, audits=(Transition, audits),
                               changes=(Change, changes))
            if moved:
                change_log.hint_after_commit(alias)
        if not moved:
            raise self._conflict(RunState(values.get("state", source)), source, first_version)

    def _conflict(self, target: RunState, expected_state: RunState,
                  expected_version: int) -> Exception:
        current = type(self).objects.filter(pk=self.pk).values_list("state", "version").first()
        if current is None:
            return RunNotFound(f"run {self.pk} no longer exists", run_id=self.pk)
        state, version = current
        return TransitionConflict(
            f"run {self.pk} changed underneath: it is {state} (version {version}), not "
            f"{expected_state} (version {expected_version}); cannot move to {target}",
            run_id=self.pk, current_state=state,
        )
