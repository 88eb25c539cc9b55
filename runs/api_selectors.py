"""Reads behind the HTTP API: bounded, indexed, keyset-paginated."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q

from .exceptions import InvalidInput
from .models import Run, Transition
from .states import RunState

MAX_PAGE = 200


class InvalidCursor(InvalidInput):
    """The cursor was not one this API handed out."""

    field = "cursor"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def encode_cursor(run: Run) -> str:
    """An opaque position after `run` in newest-first order: `<µs since 1970>_<uuid hex>`.

    Any string of that form is a position (a forged one only reads from somewhere else), so
    the API can state the form as a pattern and never refuse a request that matches it.
    """
    return f"{(run.state_changed_at - EPOCH) // MICROSECOND}_{run.pk.hex}"


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    micros, separator, run_hex = cursor.partition("_")
    try:
        if not (separator and micros.isdigit() and len(micros) <= 17):
            raise ValueError(cursor)
        return EPOCH + int(micros) * MICROSECOND, uuid.UUID(hex=run_hex)
    except (ValueError, OverflowError):
        raise InvalidCursor("cursor: not a cursor this API gave out") from None


def run_page(*, state: RunState | str | None = None, queue: str | None = None,
             name: str | None = None, limit: int = 50,
             cursor: str | None = None) -> tuple[list[Run], str | None]:
    """One page of runs, newest change first, and the cursor of the next page (or None).

    Ordered by (state_changed_at, id) descending; a run that changes state while someone pages
    moves to the front, as on a live board. Every query is an index range scan that stops after
    `limit + 1` rows: the indexes lead with (state, …), (queue, state, …) and (name, state, …),
    so a queue or name filter without a state reads the newest rows of each state and merges
    them — nine short scans instead of sorting every run of the queue.
    """
    limit = max(1, min(limit, MAX_PAGE))
    runs = Run.objects.defer("payload", "result")
    if queue:
        runs = runs.filter(queue=queue)
    if name:
        runs = runs.filter(name=name)
    if cursor:
        changed_at, run_id = decode_cursor(cursor)
        runs = runs.filter(Q(state_changed_at__lt=changed_at)
                           | Q(state_changed_at=changed_at, id__lt=run_id))
    newest = ("-state_changed_at", "-id")
    if state:
        page = list(runs.filter(state=str(state)).order_by(*newest)[: limit + 1])
    elif queue or name:
        # Merge the positions only; build full rows for the one page that is shown.
        positions: list[tuple[datetime, uuid.UUID]] = []
        for each in RunState:
            positions += runs.filter(state=each.value).order_by(*newest).values_list(
                "state_changed_at", "id")[: limit + 1]
        positions.sort(reverse=True)
        chosen = [run_id for _, run_id in positions[: limit + 1]]
        page = list(runs.filter(id__in=chosen).order_by(*newest))
    else:
        page = list(runs.order_by(*newest)[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, (encode_cursor(page[-1]) if more and page else None)


def executor_ever_leased(run_id: Any, executor: str) -> bool:
    """Whether `executor` ever held a lease on the run (one indexed look at its own history)."""
    return Transition.objects.filter(
        run_id=run_id, to_state=RunState.LEASED, actor=executor
    ).exists()
