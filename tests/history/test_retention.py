"""Retention: exactly the eligible runs and their audit rows go, in batches that survive an
interruption, and the charts of the pruned period keep their numbers."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from runs import retention
from runs.changelog.models import Change
from runs.history.counts import counts_at, counts_now
from runs.history.fold import fold
from runs.history.models import FoldCursor
from runs.history.series import history_series
from runs.models import Run, Transition
from runs.retention import prune_finished_runs
from runs.selectors import BoardFilter, state_counts
from runs.states import RunState

from .conftest import EPOCH, brute_rollups, fold_everything, stored_rollups

FINISHED = ("completed", "failed", "canceled")
CUTOFF = EPOCH + timedelta(minutes=90)


def _eligible() -> set:
    return set(Run.objects.filter(state__in=FINISHED, state_changed_at__lt=CUTOFF)
               .values_list("pk", flat=True))


def _charts() -> list[dict]:
    return [history_series(range_key=key, now=EPOCH + timedelta(hours=2)) for key in ("1h", "24h")]


@pytest.mark.django_db(transaction=True)
def test_an_interrupted_pruning_rerun_removes_exactly_the_eligible_runs(history, monkeypatch):
    history(150, seed=40)
    fold_everything()
    eligible = _eligible()
    kept = set(Run.objects.values_list("pk", flat=True)) - eligible
    unfinished = dict(Run.objects.exclude(state__in=FINISHED).values_list("pk", "version"))
    audit_kept = Transition.objects.filter(run_id__in=kept).count()
    charts, past = _charts(), counts_at(EPOCH + timedelta(minutes=60))
    assert len(eligible) > 20

    first = prune_finished_runs(finished_before=CUTOFF, batch=7, max_batches=2)  # interrupted
    assert (first.runs, first.batches) == (14, 2)
    calls = {"n": 0}
    real = retention.change_log.hint_after_commit

    def crash_on_second_batch(alias):  # the last step inside a batch's transaction
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed mid-batch")
        return real(alias)

    monkeypatch.setattr(retention.change_log, "hint_after_commit", crash_on_second_batch)
    with pytest.raises(RuntimeError):
        prune_finished_runs(finished_before=CUTOFF, batch=7)
    monkeypatch.undo()
    assert len(eligible - set(Run.objects.values_list("pk", flat=True))) == 21  # whole batches

    out = io.StringIO()
    call_command("prune_runs", "--finished-before", CUTOFF.isoformat(), "--batch", "9",
                 stdout=out)
    assert out.getvalue().startswith(f"removed {len(eligible) - 21} finished run(s)")
    assert set(Run.objects.values_list("pk", flat=True)) == kept
    assert Transition.objects.filter(run_id__in=eligible).count() == 0
    assert Transition.objects.count() == audit_kept
    assert dict(Run.objects.exclude(state__in=FINISHED).values_list("pk", "version")) == unfinished
    deleted = Change.objects.filter(kind=Change.DELETED)
    assert set(deleted.values_list("run_id", flat=True)) == eligible
    assert set(deleted.values_list("to_state", flat=True)) == {""}

    fold_everything()
    assert _charts() == charts  # the rollups of the pruned period are untouched
    assert counts_at(EPOCH + timedelta(minutes=60)) == past
    exact = {row["state"]: row["n"] for row in
             Run.objects.values("state").annotate(n=Count("pk"))}
    assert {s: n for s, n in counts_now().items() if n} == exact
    assert {s: n for s, n in state_counts(BoardFilter()).items() if n} == exact


@pytest.mark.django_db
def test_pruning_again_finds_nothing_and_unfinished_runs_are_never_selected(make_run):
    old = EPOCH - timedelta(days=60)
    for state in RunState:
        make_run(state, state_changed_at=old)
    report = prune_finished_runs(finished_before=EPOCH)
    assert report.runs == 3 and dict(report.by_state) == {s: 1 for s in FINISHED}
    assert prune_finished_runs(finished_before=EPOCH).runs == 0
    assert Run.objects.count() == 6


@pytest.mark.django_db
def test_prune_runs_refuses_without_a_cutoff_when_retention_is_off(settings):
    settings.RUNBOARD = {**settings.RUNBOARD, "FINISHED_RUN_RETENTION": None}
    with pytest.raises(CommandError, match="retention is off"):
        call_command("prune_runs")


LATENCIES = ("wait", "run", "dwell:")


def _latencies(rollups: dict) -> dict:
    return {key: value for key, value in rollups.items() if key[4].startswith(LATENCIES)}


@pytest.mark.django_db(transaction=True)
def test_a_run_the_fold_has_not_passed_is_kept_until_it_has(history):
    history(150, seed=41)
    expected = _latencies(brute_rollups())  # from the audit trail, before anything is pruned
    fold(limit=120)  # the fold lags: later rows, finishing moves among them, are unread
    behind = set(Change.objects.filter(id__gt=FoldCursor.objects.get().change_id)
                 .values_list("run_id", flat=True))
    eligible = _eligible()
    waiting = eligible & behind
    assert waiting and waiting != eligible, "the fold should lag behind some finished runs"

    first = prune_finished_runs(finished_before=CUTOFF)
    assert first.runs == len(eligible - waiting)
    assert _eligible() == waiting  # kept, with their audit rows

    fold_everything()
    second = prune_finished_runs(finished_before=CUTOFF)
    assert second.runs == len(waiting) and not _eligible()
    fold_everything()
    assert _latencies(stored_rollups()) == expected  # no run's latency was lost to pruning
