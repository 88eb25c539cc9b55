"""The fold against a brute-force recomputation over the same generated history."""

from __future__ import annotations

import io
import re
import threading

import pytest
from django.db.models import Count

from runs.changelog.models import ChangeReader
from runs.changelog.pruning import oldest_reader
from runs.changelog.reader import Position
from runs.history import fold as fold_module
from runs.history.fold import fold, fold_all, initialize
from runs.history.models import FoldCursor, Rollup, StateTotal
from runs.models import Run
from tests.runs.racing import race

from .conftest import brute_rollups, fold_everything, stored_rollups


def _totals() -> dict[tuple[str, str, str], int]:
    return {(t.queue, t.name, t.state): t.count for t in StateTotal.objects.all() if t.count}


def _exact_totals() -> dict[tuple[str, str, str], int]:
    return {(row["queue"], row["name"], row["state"]): row["n"] for row in
            Run.objects.order_by().values("queue", "name", "state").annotate(n=Count("pk"))}


@pytest.mark.django_db(transaction=True)
def test_rollups_equal_a_brute_force_count_of_the_audit_trail(history):
    history(150, seed=1)
    fold_everything(limit=97)  # batches that cut through runs' histories
    assert stored_rollups() == brute_rollups()
    assert _totals() == _exact_totals()


@pytest.mark.django_db(transaction=True)
def test_folding_between_moves_carries_each_runs_entry_across_batches(history):
    history(60, seed=2)
    fold_everything(limit=50)
    history(60, seed=3)  # more runs, some of them in the same buckets
    fold_everything(limit=33)
    assert stored_rollups() == brute_rollups()
    assert _totals() == _exact_totals()
    kept = fold_module._known.kept  # this thread folded last: it keeps unfinished runs only
    assert kept is not None and {state for state, *_ in kept[1].values()} <= {
        "scheduled", "ready", "leased", "running", "retry_wait", "suspended"}


@pytest.mark.django_db(transaction=True)
def test_folding_again_when_caught_up_adds_nothing(history):
    history(40, seed=4)
    fold_everything()
    before = stored_rollups()
    assert fold() == 0
    assert stored_rollups() == before


@pytest.mark.django_db(transaction=True)
def test_latencies_of_runs_older_than_the_fold_come_from_the_audit_trail(history):
    history(50, seed=5)
    fold_everything()
    fold_module._known.kept = None  # as a new process: nothing kept, all from the audit trail
    Rollup.objects.all().delete()
    FoldCursor.objects.update(txid=0, change_id=0)
    fold_everything(limit=40)
    assert stored_rollups() == brute_rollups()


@pytest.mark.django_db(transaction=True)
def test_totals_start_from_an_exact_count_of_runs_that_exist_before_the_first_fold(history):
    history(40, seed=6)
    Run.objects.create(name="imported", queue="legacy", state="completed")  # no audit row
    assert initialize()
    assert not initialize()
    history(40, seed=7)
    fold_everything(limit=25)
    assert _totals() == _exact_totals()


@pytest.mark.django_db(transaction=True)
def test_the_fold_holds_change_log_pruning_back_to_its_cursor(history):
    history(20, seed=8)
    fold(limit=10)
    cursor = FoldCursor.objects.get()
    reader = ChangeReader.objects.get(name="fold:history")
    assert (reader.txid, reader.change_id) == (cursor.txid, cursor.change_id)
    assert oldest_reader() == Position(cursor.txid, cursor.change_id)


@pytest.mark.django_db(transaction=True)
def test_two_clocks_folding_at_once_fold_every_row_exactly_once(history):
    history(120, seed=9)
    initialize()
    outcomes = race([lambda: fold_everything(limit=20)] * 3)
    assert [kind for kind, _ in outcomes] == ["ok"] * 3, outcomes
    assert stored_rollups() == brute_rollups()
    assert _totals() == _exact_totals()


@pytest.mark.django_db(transaction=True)
def test_generated_histories_cover_every_measure_the_fold_keeps(history):
    history(150, seed=1)
    fold_everything()
    measures = set(Rollup.objects.values_list("measure", flat=True))
    assert {"submitted", "wait", "run", "dwell:ready", "dwell:running", "in:failed",
            "out:retry_wait", "in:canceled", "dwell:suspended", "dwell:scheduled"} <= measures


@pytest.mark.django_db(transaction=True)
def test_fold_history_command_folds_what_is_pending(history):
    from django.core.management import call_command

    history(10, seed=10)
    out = io.StringIO()
    call_command("fold_history", "--batch", "7", stdout=out)
    # PostgreSQL: a transaction open anywhere in the cluster may hold the watermark back, so
    # one pass may fold fewer rows (even none); the rest follows.
    assert re.fullmatch(r"folded \d+ change-log row\(s\) into the history\n", out.getvalue())
    fold_everything()
    assert stored_rollups() == brute_rollups()


@pytest.mark.django_db(transaction=True)
def test_the_clock_folds_before_it_prunes(history):

    from runs.clock import run_clock

    history(10, seed=11)
    calls: list[str] = []
    run_clock(interval=0.01, stop=threading.Event(), once=True, tick=lambda: {},
              prune=lambda **_: calls.append("prune") or 0,
              fold=lambda **kw: calls.append("fold") or fold_all(**kw),
              prune_history=lambda **_: calls.append("prune rollups") or 0)
    assert calls == ["fold", "prune", "prune rollups"]
    fold_everything()
    assert stored_rollups() == brute_rollups()
