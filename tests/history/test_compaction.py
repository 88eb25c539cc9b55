"""Compaction: the fold's appended increments merged into the rollups, against brute force;
readers answer the same before, during and after it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections

from dashboard.metrics import _all_time
from runs.history.compaction import compact
from runs.history.counts import counts_at
from runs.history.fold import fold
from runs.history.models import Rollup, RollupDelta
from runs.history.series import RANGES, history_series
from tests.runs.racing import race

from .conftest import EPOCH, brute_counts_at, brute_rollups, fold_everything, stored_rollups


def _compacted() -> dict[tuple, list[int]]:
    """The rollup rows alone, without the increments not merged yet."""
    return {(r.grain, r.queue, r.name, r.start, r.measure, r.bucket): [r.count, r.total_ms]
            for r in Rollup.objects.all() if r.count or r.total_ms}


def _everything_read() -> tuple:
    now = EPOCH + timedelta(minutes=75)
    filters = [("", ""), ("emails", ""), ("", "sync-crm"), ("reports", "send-report")]
    series = [history_series(range_key=key, queue=queue, name=name, now=now)
              for key in RANGES for queue, name in filters]
    moments = [EPOCH + timedelta(minutes=m) for m in (0, 7, 61, 150, 240)]
    counts = [counts_at(moment, queue=queue, name=name)
              for moment in moments for queue, name in filters]
    return series, counts, _all_time()


@pytest.mark.django_db(transaction=True)
def test_readers_answer_the_same_before_and_after_compaction(history):
    history(120, seed=50)
    fold_everything(limit=70, compact=False)
    assert RollupDelta.objects.exists() and not Rollup.objects.exists()
    assert stored_rollups() == brute_rollups()
    before = _everything_read()
    moment = EPOCH.replace(second=0) + timedelta(minutes=61)
    assert counts_at(moment) == brute_counts_at(moment)

    assert compact(batch=37) > 0

    assert not RollupDelta.objects.exists()
    assert _compacted() == brute_rollups()
    assert _everything_read() == before


@pytest.mark.django_db(transaction=True)
def test_compacting_while_changes_for_the_same_buckets_keep_arriving(history):
    history(60, seed=51)
    fold_everything(limit=40)
    history(60, seed=52)  # the same buckets again, some of them compacted already
    history(20, seed=53, start=EPOCH - timedelta(days=2))  # late: long-closed buckets
    fold(limit=50)
    compact(batch=13)
    fold(limit=50)
    fold_everything(limit=50, compact=False)
    assert RollupDelta.objects.exists()
    assert stored_rollups() == brute_rollups()
    compact(batch=13)
    assert _compacted() == brute_rollups()


@pytest.mark.django_db(transaction=True)
def test_two_clocks_compacting_at_once_merge_every_increment_once(history):
    history(120, seed=54)
    fold_everything(limit=20, compact=False)
    outcomes = race([lambda: compact(batch=11)] * 3)
    assert [kind for kind, _ in outcomes] == ["ok"] * 3, outcomes
    assert not RollupDelta.objects.exists()
    assert _compacted() == brute_rollups()


@pytest.mark.django_db(transaction=True)
def test_clocks_taking_turns_read_back_the_entries_the_other_one_wrote(history):
    history(80, seed=55)

    def one_batch() -> None:
        try:
            fold(limit=30)
        finally:
            close_old_connections()

    # The main thread keeps the entries of its own batches; each batch in between by another
    # thread moves runs it knows, so it must read them back instead.
    for _ in range(12):
        fold(limit=30)
        other = threading.Thread(target=one_batch)
        other.start()
        other.join(timeout=60)
    fold_everything(limit=30)
    assert _compacted() == brute_rollups()
