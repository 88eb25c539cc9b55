"""What a log reader takes in one round: the next rows, the cards of the runs they touched,
and exact counts for the board filters that asked for them — bounded queries, one round."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from runs import selectors
from runs.selectors import BoardFilter

from .reader import (
    LogRow,
    Position,
    Snapshot,
    consistent_read,
    held_back,
    is_retained,
    read_after,
)


@dataclass
class Batch:
    rows: list[LogRow]
    cards: dict[str, dict[str, Any] | None]  # run id -> card (None: the run is gone)
    counts: dict[BoardFilter, tuple[dict[str, int], Snapshot]] = field(default_factory=dict)
    held_back: bool = False  # committed rows wait above the watermark (see `reader.held_back`)


def read_batch(position: Position, *, limit: int, wants: Callable[[LogRow], bool],
               count_filters: Iterable[BoardFilter] = ()) -> Batch:
    """Up to `limit` rows after `position`; the cards of the runs `wants` asks for (one
    query); and, for each of `count_filters`, its counts with the log rows they reflect.

    The counts are read after the rows, so every row returned here is already in them.
    """
    rows = read_after(position, limit=limit)
    cards = selectors.cards_for({row.run_id for row in rows if wants(row)})
    batch = Batch(rows=rows, cards=cards,
                  held_back=len(rows) < limit and held_back(rows[-1].position if rows
                                                            else position))
    for board_filter in count_filters:
        with consistent_read() as snapshot:
            batch.counts[board_filter] = (selectors.state_counts(board_filter), snapshot)
    return batch


def read_missed(after: Position, *, until: Position, limit: int,
                wants: Callable[[LogRow], bool]) -> Batch | None:
    """The rows a reconnecting client missed between `after` and `until` (that `wants` keeps)
    with their runs' cards, or None when the log no longer holds them all or they are more
    than `limit`: the client then takes a snapshot instead."""
    if not is_retained(after):
        return None
    rows = read_after(after, until=until, limit=limit + 1)
    if len(rows) > limit:
        return None
    rows = [row for row in rows if wants(row)]
    return Batch(rows=rows, cards=selectors.cards_for({row.run_id for row in rows}))
