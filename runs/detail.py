"""Everything the run page shows about one run, read in a fixed handful of bounded queries:
the run (with the run it reruns), its timeline, its newest reruns, and — for a ready run —
its place in the queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import groupby
from typing import Any

from django.utils import timezone
from django.utils.formats import date_format

from .actions import ACTIONS, permitted_actions
from .explain import Answer, explain
from .models import Run, Transition
from .states import RunState

METER_WARN_PERCENT = 80
TIMELINE_LIMIT = 2_000  # a run that bounced this often shows its latest moves
RERUNS_LIMIT = 50
JSON_DISPLAY_LIMIT = 64 * 1024
# Actions whose service records a reason the operator may type.
ACTIONS_WITH_REASON = frozenset({"cancel", "suspend"})
# Shown in their own sections, not in the field table.
SEPARATE_FIELDS = frozenset({"payload", "result"})


def attempt_label(attempt: int) -> str:
    """A timeline group's heading. A preempted attempt is not counted (attempts goes back
    down), so "no attempt counted" can come again after "Attempt 1"."""
    return f"Attempt {attempt}" if attempt else "No attempt counted"


@dataclass(frozen=True)
class TimelineEntry:
    """One audit row as the timeline shows it."""

    id: int
    from_state: str
    to_state: str
    at: datetime
    actor: str
    reason: str
    attempt: int
    group: int = -1  # the attempt this move belongs to (see `group_by_attempt`)

    @property
    def at_display(self) -> str:
        return date_format(timezone.localtime(self.at), "Y-m-d H:i:s T")

    def as_json(self) -> dict[str, Any]:
        group = self.attempt if self.group < 0 else self.group
        return {"id": self.id, "from": self.from_state, "to": self.to_state,
                "at": self.at.isoformat(), "at_display": self.at_display, "actor": self.actor,
                "reason": self.reason, "attempt": self.attempt, "group": group,
                "group_label": attempt_label(group)}


@dataclass(frozen=True)
class AttemptGroup:
    """Consecutive timeline entries made during the same attempt number."""

    attempt: int
    entries: list[TimelineEntry]

    @property
    def label(self) -> str:
        return attempt_label(self.attempt)


@dataclass(frozen=True)
class Meter:
    """How much of one budget dimension a run has used."""

    dimension: str
    used: float
    limit: float

    @property
    def percent(self) -> int:
        """Share of the limit used, not capped: 400 of 300 is 133 %."""
        return 100 if self.limit <= 0 else round(self.used * 100 / self.limit)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit

    @property
    def level(self) -> str:
        """"over" (exhausted), "warn" (80 % or more) or "": the board's meters use the same."""
        if self.exhausted:
            return "over"
        return "warn" if self.percent >= METER_WARN_PERCENT else ""

    @property
    def bar_width(self) -> int:
        return min(self.percent, 100)

    def as_json(self) -> dict[str, Any]:
        return {"dimension": self.dimension, "used": self.used, "limit": self.limit,
                "percent": self.percent, "exhausted": self.exhausted, "level": self.level,
                "bar_width": self.bar_width}


@dataclass(frozen=True)
class ActionButton:
    """An action this user holds the permission for, and whether the run's state allows it."""

    name: str
    label: str
    applicable: bool
    takes_reason: bool
    destructive: bool = False


@dataclass(frozen=True)
class RunDetail:
    """The run page's data."""

    run: Run
    answer: Answer
    groups: list[AttemptGroup]
    timeline_truncated: bool
    reruns: list[Run]
    fields: list[dict[str, str]]
    meters: list[Meter]
    payload_json: str
    result_json: str
    actions: list[ActionButton]

    @property
    def last_transition_id(self) -> int:
        return self.groups[-1].entries[-1].id if self.groups else 0


def load_run(run_id: Any) -> Run:
    """The run with the run it reruns joined in; `Run.DoesNotExist` if there is none."""
    return Run.objects.select_related("rerun_of").get(pk=run_id)


def timeline(run: Run, *, after: int = 0) -> tuple[list[TimelineEntry], bool]:
    """The run's audit rows in order (after transition id `after`), at most TIMELINE_LIMIT of
    the newest; the flag says whether older ones were left out."""
    rows = list(
        Transition.objects.filter(run=run, id__gt=after).order_by("-id")
        .values_list("id", "from_state", "to_state", "at", "actor", "reason", "attempt")
        [: TIMELINE_LIMIT + 1]
    )
    truncated = len(rows) > TIMELINE_LIMIT
    return [TimelineEntry(*row) for row in reversed(rows[:TIMELINE_LIMIT])], truncated


def attempt_of(entry: TimelineEntry, previous: TimelineEntry | None,
               following: TimelineEntry | None) -> int:
    """The attempt a move belongs to. An audit row records the count after the move, so the
    lease that starts attempt N is recorded as N-1 and a preemption that ends attempt N as N-1:
    the lease joins the attempt it started, a move out of running the attempt that ran."""
    if entry.from_state == RunState.RUNNING and previous is not None:
        return previous.group
    if (entry.to_state == RunState.LEASED and following is not None
            and following.from_state == RunState.LEASED
            and following.to_state == RunState.RUNNING):
        return following.attempt
    return entry.attempt


def assign_attempts(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    """The entries with `group` set (see `attempt_of`), in order."""
    placed: list[TimelineEntry] = []
    for index, entry in enumerate(entries):
        following = entries[index + 1] if index + 1 < len(entries) else None
        previous = placed[-1] if placed else None
        placed.append(replace(entry, group=attempt_of(entry, previous, following)))
    return placed


def group_by_attempt(entries: list[TimelineEntry]) -> list[AttemptGroup]:
    """Group consecutive entries by the attempt they belong to, keeping order (a suspension
    un-counts an attempt, so the same number can come back later as its own group)."""
    return [AttemptGroup(attempt, list(items))
            for attempt, items in groupby(assign_attempts(entries),
                                          key=lambda entry: entry.group)]


def field_rows(run: Run) -> list[dict[str, str]]:
    """Every stored field of the run as (name, label, display value), model order."""
    rows = []
    for model_field in Run._meta.concrete_fields:
        if model_field.name in SEPARATE_FIELDS:
            continue
        value = getattr(run, model_field.attname)
        if model_field.choices and value:
            value = f"{getattr(run, f'get_{model_field.name}_display')()} ({value})"
        rows.append({"name": model_field.name, "label": str(model_field.verbose_name),
                     "value": display_value(value)})
    return rows


def display_value(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + \
            timezone.localtime(value).strftime(" %Z")
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def pretty_json(value: Any) -> str:
    """Indented JSON for display, cut at JSON_DISPLAY_LIMIT characters with a note."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > JSON_DISPLAY_LIMIT:
        return text[:JSON_DISPLAY_LIMIT] + f"\n… (cut: {len(text):,} characters in all)"
    return text


def budget_meters(run: Run) -> list[Meter]:
    consumed = run.consumed or {}
    return [Meter(dimension, float(consumed.get(dimension, 0)), float(limit))
            for dimension, limit in sorted((run.budget or {}).items())]


def action_buttons(run: Run, user: Any) -> list[ActionButton]:
    """The actions `user` may take, each marked applicable or not in the run's state now."""
    allowed = set(permitted_actions(user))
    return [ActionButton(name, action.label, action.applies(run.run_state),
                         name in ACTIONS_WITH_REASON, action.destructive)
            for name, action in ACTIONS.items() if name in allowed]


def run_detail(run_id: Any, *, user: Any, now: datetime | None = None) -> RunDetail:
    """Everything the run page shows; raises `Run.DoesNotExist` for an unknown id."""
    run = load_run(run_id)
    entries, truncated = timeline(run)
    transitions = [Transition(to_state=e.to_state, actor=e.actor, reason=e.reason)
                   for e in entries]
    return RunDetail(
        run=run,
        answer=explain(run, now=now, transitions=transitions),
        groups=group_by_attempt(entries),
        timeline_truncated=truncated,
        reruns=list(run.reruns.order_by("-created_at").only(
            "id", "name", "state", "created_at", "rerun_of")[:RERUNS_LIMIT]),
        fields=field_rows(run),
        meters=budget_meters(run),
        payload_json=pretty_json(run.payload),
        result_json=pretty_json(run.result),
        actions=action_buttons(run, user),
    )


def live_state(run_id: Any, *, user: Any, after: int = 0) -> dict[str, Any]:
    """What the run page's script refreshes after a websocket delta, as JSON-ready data."""
    run = load_run(run_id)
    entries, _ = timeline(run, after=after)
    answer = explain(run)
    return {
        "id": str(run.pk),
        "state": run.state,
        "state_label": run.get_state_display(),
        "version": run.version,
        "finished": run.run_state.is_terminal,
        "answer": {"code": answer.code, "text": answer.text},
        "fields": field_rows(run),
        "meters": [meter.as_json() for meter in budget_meters(run)],
        "result": pretty_json(run.result),
        "timeline": [entry.as_json() for entry in assign_attempts(entries)],
        "actions": [button.name for button in action_buttons(run, user) if button.applicable],
        "reruns": [{"id": str(r.pk), "short_id": r.short_id, "state": r.state}
                   for r in run.reruns.order_by("-created_at").only("id", "state", "rerun_of")
                   [:RERUNS_LIMIT]],
    }
