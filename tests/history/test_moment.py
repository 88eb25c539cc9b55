"""The board at a past moment against the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runs.history.moment import board_at
from runs.models import Transition

from .conftest import EPOCH, brute_counts_at, fold_everything


def _brute_columns(moment, limit, queue=""):
    latest = {}
    for row in Transition.objects.filter(at__lt=moment).select_related("run").order_by("at", "id"):
        if queue and row.run.queue != queue:
            continue
        latest[row.run_id] = row
    columns: dict[str, list] = {}
    for row in sorted(latest.values(), key=lambda r: (r.at, r.id), reverse=True):
        columns.setdefault(row.to_state, [])
        if len(columns[row.to_state]) < limit:
            columns[row.to_state].append((str(row.run_id), row.attempt))
    return columns


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("minutes", "queue"), [(45, ""), (100, "emails"), (170, "")])
def test_the_board_at_a_past_minute_shows_that_minutes_counts_and_newest_cards(
        history, minutes, queue):
    history(120, seed=60)
    fold_everything()
    moment = EPOCH.replace(second=0) + timedelta(minutes=minutes)
    board = board_at(moment, queue=queue, limit=4)
    assert board["counts"] == brute_counts_at(moment, queue=queue)
    expected = _brute_columns(moment, 4, queue)
    got = {state: [(card["id"], card["attempts"]) for card in cards]
           for state, cards in board["cards"].items() if cards}
    assert got == {state: cards for state, cards in expected.items() if cards}
    assert board["cards_complete"]
    for card in board["cards"]["leased"] + board["cards"]["running"]:
        assert card["lease_owner"].startswith("exec-") or card["lease_owner"] == "gen"
