"""What the Queues page shows: per queue, its backlog, latency, work in hand and throughput.

Selectors only, bounded whatever the table size:
- queue names come from the loose index scan of the run list (`listing.distinct_queues`: one
  index probe per queue) plus the paused set, at most `QUEUE_LIMIT` queues;
- every figure is a correlated subquery per queue that reads one range of the queue-led index
  `run_queue_state` (queue, state, state_changed_at, id): the oldest ready run is its first
  entry, and each count stops at `COUNT_CAP + 1` entries ("10,000+"), so a backlog of a million
  ready runs costs what ten thousand cost. No query reads all runs.
- Throughput uses `state_changed_at` of finished runs, which is when they finished (a finished
  run never changes again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .listing import COUNT_CAP, BoundedCount, distinct_queues
from .models import Run
from .queues import QueuePause
from .states import RunState

QUEUE_LIMIT = 500

# (column, state, since) — `since` names the window of finished runs, None for "now".
COUNTS: tuple[tuple[str, RunState, str | None], ...] = (
    ("ready", RunState.READY, None),
    ("leased", RunState.LEASED, None),
    ("running", RunState.RUNNING, None),
    ("completed_minute", RunState.COMPLETED, "minute"),
    ("completed_hour", RunState.COMPLETED, "hour"),
    ("failed_minute", RunState.FAILED, "minute"),
    ("failed_hour", RunState.FAILED, "hour"),
)


@dataclass(frozen=True)
class QueueRow:
    """One queue as the Queues page shows it."""

    name: str
    ready: BoundedCount
    oldest_ready_at: datetime | None
    leased: BoundedCount
    running: BoundedCount
    completed_minute: BoundedCount
    completed_hour: BoundedCount
    failed_minute: BoundedCount
    failed_hour: BoundedCount
    pause: QueuePause | None

    @property
    def paused(self) -> bool:
        return self.pause is not None

    def latency(self, now: datetime) -> timedelta | None:
        """How long the oldest ready run has waited to be leased."""
        return max(now - self.oldest_ready_at, timedelta(0)) if self.oldest_ready_at else None


@dataclass(frozen=True)
class QueueOverview:
    """Every queue (up to `QUEUE_LIMIT`) as of `at`."""

    at: datetime
    queues: list[QueueRow]
    truncated: bool  # more queues exist than the page shows

    @property
    def paused_count(self) -> int:
        return sum(1 for row in self.queues if row.paused)


def _capped_count(table: str, state: RunState, since: str | None) -> str:
    """COUNT over one index range of `run_queue_state`, stopping after `cap` entries."""
    window = f" AND r.state_changed_at >= %({since})s" if since else ""
    return (f"(SELECT COUNT(*) FROM (SELECT 1 FROM {table} r WHERE r.queue = q.name"
            f" AND r.state = '{state.value}'{window} LIMIT %(cap)s) capped)")


def _overview_sql(names: list[str]) -> str:
    table = connection.ops.quote_name(Run._meta.db_table)
    values = ", ".join(f"(%(q{index})s)" for index in range(len(names)))
    columns = [
        # The oldest ready run: the first entry of its (queue, ready) index range.
        f"(SELECT r.state_changed_at FROM {table} r WHERE r.queue = q.name AND r.state ="
        f" '{RunState.READY.value}' ORDER BY r.state_changed_at, r.id LIMIT 1) AS oldest_ready",
    ]
    columns += [f"{_capped_count(table, state, since)} AS {column}"
                for column, state, since in COUNTS]
    return (f"WITH q(name) AS (VALUES {values}) SELECT q.name, {', '.join(columns)} FROM q"
            f" ORDER BY q.name")


def overview_query(names: list[str], *, now: datetime) -> tuple[str, dict[str, Any]]:
    """The figures of the named queues: SQL and parameters (tests EXPLAIN it)."""
    adapt = connection.ops.adapt_datetimefield_value
    params: dict[str, Any] = {f"q{index}": name for index, name in enumerate(names)}
    params.update(cap=COUNT_CAP + 1, minute=adapt(now - timedelta(minutes=1)),
                  hour=adapt(now - timedelta(hours=1)))
    return _overview_sql(names), params


def _as_datetime(value: Any) -> datetime | None:
    """A timestamp from a raw row: psycopg gives aware datetimes, SQLite naive UTC text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value


def queue_overview(*, now: datetime | None = None, limit: int = QUEUE_LIMIT) -> QueueOverview:
    """Every queue's figures in two small queries plus one query of bounded index probes."""
    now = now or timezone.now()
    pauses = {pause.queue: pause for pause in QueuePause.objects.all()[:limit]}
    found = distinct_queues(limit=limit + 1)
    truncated = len(found) > limit
    names = sorted(set(found[:limit]) | set(pauses))[:limit]
    if not names:
        return QueueOverview(at=now, queues=[], truncated=False)
    with connection.cursor() as cursor:
        cursor.execute(*overview_query(names, now=now))
        rows = cursor.fetchall()
    queues = []
    for name, oldest, *counts in rows:
        figures = {column: BoundedCount(value, COUNT_CAP)
                   for (column, _, _), value in zip(COUNTS, counts, strict=True)}
        queues.append(QueueRow(name=name, oldest_ready_at=_as_datetime(oldest),
                               pause=pauses.get(name), **figures))
    return QueueOverview(at=now, queues=queues, truncated=truncated)
