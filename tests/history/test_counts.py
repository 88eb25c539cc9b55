"""Exact counts now and at past minutes, against the runs table and the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Count

from runs.history.counts import HistoryUnavailable, counts_at, counts_now, zero
from runs.history.fold import fold
from runs.models import Run

from .conftest import EPOCH, brute_counts_at, fold_everything


def _exact(**filters) -> dict[str, int]:
    counts = zero()
    for row in Run.objects.filter(**filters).values("state").annotate(n=Count("pk")):
        counts[row["state"]] = row["n"]
    return counts


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("minutes", [0, 7, 61, 122, 150, 179, 240])
def test_counts_at_a_past_minute_match_the_audit_trail(history, minutes):
    history(120, seed=20)
    fold_everything(limit=200)
    moment = EPOCH.replace(second=0) + timedelta(minutes=minutes)
    assert counts_at(moment) == brute_counts_at(moment)
    assert counts_at(moment, queue="emails") == brute_counts_at(moment, queue="emails")
    assert counts_at(moment, name="sync-crm") == brute_counts_at(moment, name="sync-crm")
    assert (counts_at(moment, queue="reports", name="send-report")
            == brute_counts_at(moment, queue="reports", name="send-report"))


@pytest.mark.django_db(transaction=True)
def test_a_moment_inside_a_minute_is_read_as_that_minute(history):
    history(60, seed=21)
    fold_everything()
    moment = EPOCH + timedelta(minutes=33, seconds=41)
    assert counts_at(moment) == brute_counts_at(moment.replace(second=0, microsecond=0))


@pytest.mark.django_db(transaction=True)
def test_counts_now_add_the_unfolded_tail_to_the_totals(history):
    history(80, seed=22)
    fold(limit=100)  # most of the log is still unfolded
    assert counts_now() == _exact()
    assert counts_now(queue="default") == _exact(queue="default")
    assert counts_now(name="report") == _exact(name__icontains="report")


@pytest.mark.django_db(transaction=True)
def test_counts_are_unavailable_before_the_first_fold(history):
    history(3, seed=23)
    with pytest.raises(HistoryUnavailable):
        counts_now()
