"""The run list: filters that live in the URL, keyset pages, bounded counts.

Selectors only. Every query here is bounded whatever the table size:
- pages are keyset pages on (state_changed_at, id), newest first, read in index order
  (`run_state_changed`, `run_queue_state` or `run_changed`), so page 500 costs what page 1 costs;
- counts are LIMIT-ed ("10,000+" past the cap), never a COUNT(*) over a large filter;
- a search by short id (the last 8 hex digits a card shows) uses the expression index that
  migration 0002 creates on exactly `ShortId()`.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import CharField, F, Func, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .models import Run
from .states import RunState

PAGE_SIZE = 50
COUNT_CAP = 10_000
SHORT_ID_LENGTH = 8
QUEUE_CHOICES_LIMIT = 200

# Columns the table shows; payload, result and errors stay on disk.
LIST_COLUMNS = ("id", "name", "queue", "state", "priority", "attempts", "max_attempts",
                "progress", "lease_owner", "state_changed_at", "created_at")

SEARCH_HELP = ("Search by the full run id or its last 8 or more characters "
               "(the short id on a card).")
UNKNOWN_STATE = "There is no state {state!r}: nothing matches."
_HEX = re.compile(r"^[0-9a-f]+$")


class ShortId(Func):
    """The last 8 hex digits of a run id — the short id cards show.

    Written so the SQL is exactly the expression indexed by migration 0002 (`run_short_id`):
    PostgreSQL stores ids as `uuid`, SQLite as 32 hex characters; the last 8 hex digits are the
    same in both spellings, since the final dash comes 12 digits from the end.
    """

    output_field = CharField()

    def __init__(self) -> None:
        super().__init__(F("id"))

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        sql, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            return f"right(({sql})::text, {SHORT_ID_LENGTH})", params
        return f"substr({sql}, -{SHORT_ID_LENGTH})", params


TIME_PARAMS = ("changed_after", "changed_before", "finished_after", "finished_before")


def parse_moment(value: str) -> datetime | None:
    """An ISO time from the URL (naive means UTC), or None."""
    moment = parse_datetime(value.replace(" ", "+"))
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment


@dataclass(frozen=True)
class RunFilter:
    """What the run list shows, read from and written back to the URL (bookmarkable)."""

    state: str = ""
    queue: str = ""
    name: str = ""
    search: str = ""
    errors: tuple[str, ...] = field(default=())
    # Time range (history): state changed / finished at or after `*_after`, before `*_before`;
    # `error`: runs whose last error starts with this line (the top-errors links).
    changed_after: datetime | None = None
    changed_before: datetime | None = None
    finished_after: datetime | None = None
    finished_before: datetime | None = None
    error: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> RunFilter:
        """Parse `?state=&queue=&name=&q=`; unknown values are dropped with an error message."""
        errors: list[str] = []
        state = (query.get("state") or "").strip()[:40]
        if state and state not in RunState.values:
            errors.append(UNKNOWN_STATE.format(state=state))
        search = (query.get("q") or "").strip().lower()[:40]
        if search and id_search_q(search) is None:
            errors.append(f"{search!r} is not a run id. {SEARCH_HELP}")
        moments = {}
        for key in TIME_PARAMS:
            raw = (query.get(key) or "").strip()
            moments[key] = parse_moment(raw) if raw else None
            if raw and moments[key] is None:
                errors.append(f"{key}: {raw[:40]!r} is not an ISO time.")
        return cls(state=state, queue=(query.get("queue") or "").strip()[:100],
                   name=(query.get("name") or "").strip()[:200], search=search,
                   errors=tuple(errors), error=(query.get("error") or "").strip()[:300],
                   **moments)

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> RunFilter:
        """Rebuild a filter stored as `as_query()` (bulk operations keep theirs)."""
        return cls.from_query(data)

    def as_query(self) -> dict[str, str]:
        """The non-empty parameters, in URL spelling."""
        pairs = {"state": self.state, "queue": self.queue, "name": self.name, "q": self.search,
                 "error": self.error,
                 **{key: getattr(self, key).isoformat() if getattr(self, key) else ""
                    for key in TIME_PARAMS}}
        return {key: value for key, value in pairs.items() if value}

    @property
    def is_empty(self) -> bool:
        return not self.as_query()

    def describe(self) -> str:
        """"state failed, queue emails, name contains 'etl'" — for previews and reports."""
        parts = []
        if self.state:
            parts.append(f"state {self.state}")
        if self.queue:
            parts.append(f"queue {self.queue}")
        if self.name:
            parts.append(f"name contains {self.name!r}")
        if self.search:
            parts.append(f"id {self.search}")
        if self.error:
            parts.append(f"error starts with {self.error!r}")
        parts += [f"{key.replace('_', ' ')} {getattr(self, key).isoformat()}"
                  for key in TIME_PARAMS if getattr(self, key)]
        return ", ".join(parts) or "all runs"

    def apply(self, runs: Any) -> Any:
        """Narrow a Run queryset to this filter (ordering is the caller's). A filter that
        could not be read matches nothing: a bad filter narrows, it never widens."""
        if self.errors:
            return runs.none()
        if self.state:
            runs = runs.filter(state=self.state)
        if self.queue:
            runs = runs.filter(queue=self.queue)
        if self.name:
            runs = runs.filter(name__icontains=self.name)
        if self.search:
            runs = runs.filter(id_search_q(self.search))
        if self.error:
            runs = runs.filter(last_error__startswith=self.error)
        bounds = {"changed_after": "state_changed_at__gte",
                  "changed_before": "state_changed_at__lt",
                  "finished_after": "finished_at__gte", "finished_before": "finished_at__lt"}
        for key, lookup in bounds.items():
            if getattr(self, key):
                runs = runs.filter(**{lookup: getattr(self, key)})
        return runs


def id_search_q(term: str) -> Q | None:
    """A full id → primary key; 8 to 31 hex digits → indexed short id plus the exact suffix."""
    compact = term.replace("-", "")
    if len(compact) == 32 and _HEX.match(compact):
        return Q(pk=uuid.UUID(compact))
    if SHORT_ID_LENGTH <= len(compact) < 32 and _HEX.match(compact):
        short = Q(short_id_match=compact[-SHORT_ID_LENGTH:])
        if len(compact) == SHORT_ID_LENGTH:
            return short
        # Longer suffixes narrow the indexed short-id hits by the rest of the digits.
        tail = term if "-" in term else compact
        return short & Q(pk__in=_suffix_ids(compact[-SHORT_ID_LENGTH:], tail))
    return None


def _suffix_ids(short: str, tail: str) -> list[uuid.UUID]:
    hits = with_short_id(Run.objects.all()).filter(short_id_match=short).values_list("pk",
                                                                                     flat=True)
    # A short id is 32 random bits: a handful of hits at most, compared in Python.
    return [pk for pk in hits[:100] if str(pk).replace("-", "").endswith(tail.replace("-", ""))]


def with_short_id(runs: Any) -> Any:
    """Annotate `short_id_match` so filters on it use the `run_short_id` index."""
    return runs.alias(short_id_match=ShortId())


def filtered_runs(runs_filter: RunFilter) -> Any:
    """Every run the filter matches, unordered (callers bound and order it)."""
    return runs_filter.apply(with_short_id(Run.objects.all()))


# -- keyset pages ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position between rows: the (state_changed_at, id) of the row next to it."""

    state_changed_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = f"{self.state_changed_at.isoformat()}|{self.id.hex}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str | None) -> Cursor | None:
        """The cursor in `token`, or None when it is missing or not one of ours."""
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            moment, run_id = raw.split("|")
            parsed = parse_datetime(moment)
            return cls(parsed, uuid.UUID(run_id)) if parsed else None
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None

    @classmethod
    def of(cls, run: Run) -> Cursor:
        return cls(run.state_changed_at, run.pk)


@dataclass(frozen=True)
class RunPage:
    """One page of the run list, newest first, with cursors to its neighbours."""

    runs: list[Run]
    next_cursor: str | None  # older runs
    previous_cursor: str | None  # newer runs


def page_of_runs(runs_filter: RunFilter, *, after: Cursor | None = None,
                 before: Cursor | None = None, size: int | None = None) -> RunPage:
    """The page right after `after` (older) or right before `before` (newer); page 1 if neither.

    Why keyset: a run that moves gets a new `state_changed_at` and jumps to page 1, and no
    other run shifts position, so following "next" never repeats or skips a run that stayed put
    (OFFSET would). The `<=` bound is the index range; the OR only filters ties within it.
    """
    size = size or PAGE_SIZE
    runs = filtered_runs(runs_filter).only(*LIST_COLUMNS)
    if before is not None:
        newer = runs.filter(
            Q(state_changed_at__gte=before.state_changed_at)
            & (Q(state_changed_at__gt=before.state_changed_at) | Q(pk__gt=before.id))
        ).order_by("state_changed_at", "id")
        rows = list(newer[: size + 1])
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        if not more_newer:
            # We reached the top: show a full first page rather than a short one.
            return page_of_runs(runs_filter, size=size)
        return RunPage(rows, next_cursor=Cursor.of(rows[-1]).encode() if rows else None,
                       previous_cursor=Cursor.of(rows[0]).encode())
    if after is not None:
        runs = runs.filter(
            Q(state_changed_at__lte=after.state_changed_at)
            & (Q(state_changed_at__lt=after.state_changed_at) | Q(pk__lt=after.id))
        )
    rows = list(runs.order_by("-state_changed_at", "-id")[: size + 1])
    more_older = len(rows) > size
    rows = rows[:size]
    return RunPage(
        rows,
        next_cursor=Cursor.of(rows[-1]).encode() if more_older and rows else None,
        previous_cursor=Cursor.of(rows[0]).encode() if after is not None and rows else None,
    )


# -- counts and choices ---------------------------------------------------------------------


@dataclass(frozen=True)
class BoundedCount:
    """A count that stops at a cap: exact below it, "cap+" at or above."""

    value: int
    cap: int

    @property
    def exact(self) -> bool:
        return self.value <= self.cap

    def __str__(self) -> str:
        return f"{self.value:,}" if self.exact else f"{self.cap:,}+"


def bounded_count(runs: Any, *, cap: int | None = None) -> BoundedCount:
    """Count at most `cap + 1` rows (default cap COUNT_CAP): `SELECT COUNT(*) FROM (… LIMIT)`."""
    cap = cap or COUNT_CAP
    return BoundedCount(runs.order_by().values("pk")[: cap + 1].count(), cap)


def distinct_queues(*, limit: int = QUEUE_CHOICES_LIMIT) -> list[str]:
    """Queue names, sorted, read by hopping the queue-led index (a loose index scan): one
    index probe per distinct queue instead of a scan of every run."""
    table = connection.ops.quote_name(Run._meta.db_table)
    sql = (
        f"WITH RECURSIVE queues(queue) AS ("
        f" SELECT MIN(queue) FROM {table}"
        f" UNION ALL"
        f" SELECT (SELECT MIN(queue) FROM {table} WHERE queue > queues.queue)"
        f" FROM queues WHERE queues.queue IS NOT NULL"
        f") SELECT queue FROM queues WHERE queue IS NOT NULL LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]
