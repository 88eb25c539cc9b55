"""Rollup retention: fine rows past their window go, in batches; what the History page and the
scrubber read does not change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs.history.buckets import HOUR, MINUTE, TEN_MINUTES, floor_to
from runs.history.counts import counts_at
from runs.history.models import Rollup
from runs.history.pruning import KEEP, prune_rollups
from runs.history.series import RANGES, history_series

from .conftest import brute_counts_at, fold_everything


@pytest.fixture
def weeks_of_history(history):
    """Runs spread over the last 20 days (most stints cross several minutes), folded."""
    now = floor_to(timezone.now(), MINUTE) + timedelta(seconds=17)
    history(160, seed=41, start=now - timedelta(days=20), spread_seconds=20 * 86_400 - 7_200,
            max_steps=6)
    history(40, seed=42, start=now - timedelta(hours=25), spread_seconds=25 * 3_600 - 1_800)
    fold_everything()
    return now


@pytest.mark.django_db(transaction=True)
def test_history_page_numbers_are_unchanged_by_pruning(weeks_of_history):
    now = weeks_of_history
    filters = [("", ""), ("emails", ""), ("", "sync-crm")]
    before = {(key, queue, name): history_series(range_key=key, queue=queue, name=name, now=now)
              for key in RANGES for queue, name in filters}
    scrubbed = [now - timedelta(minutes=m) for m in (7, 95, 600, 23 * 60 + 41)]
    past_before = [counts_at(moment) for moment in scrubbed]

    removed = prune_rollups(now=now, batch=50)

    assert removed > 0
    after = {(key, queue, name): history_series(range_key=key, queue=queue, name=name, now=now)
             for key in RANGES for queue, name in filters}
    assert after == before
    assert [counts_at(moment) for moment in scrubbed] == past_before


@pytest.mark.django_db(transaction=True)
def test_only_rows_past_their_window_are_deleted(weeks_of_history):
    now = weeks_of_history
    hours_before = Rollup.objects.filter(grain=HOUR).count()
    kept_minutes = Rollup.objects.filter(grain=MINUTE,
                                         start__gte=floor_to(now - KEEP[MINUTE], MINUTE)).count()
    assert Rollup.objects.filter(grain=MINUTE, start__lt=now - KEEP[MINUTE]).exists()

    prune_rollups(now=now, batch=50, max_batches=3)  # bounded: stops after three batches
    assert Rollup.objects.filter(grain=MINUTE, start__lt=now - KEEP[MINUTE]).exists()
    prune_rollups(now=now, batch=50)

    for grain in (MINUTE, TEN_MINUTES):
        assert not Rollup.objects.filter(grain=grain,
                                         start__lt=floor_to(now - KEEP[grain], grain)).exists()
    assert Rollup.objects.filter(grain=MINUTE).count() == kept_minutes
    assert Rollup.objects.filter(grain=HOUR).count() == hours_before
    assert prune_rollups(now=now) == 0


@pytest.mark.django_db(transaction=True)
def test_a_moment_older_than_the_minute_window_is_counted_at_a_coarser_grain(
        weeks_of_history):
    now = weeks_of_history
    prune_rollups(now=now)
    three_days_ago = now - timedelta(days=3, minutes=7)
    assert counts_at(three_days_ago) == brute_counts_at(floor_to(three_days_ago, TEN_MINUTES))
    sixteen_days_ago = now - timedelta(days=16, minutes=7)
    assert counts_at(sixteen_days_ago) == brute_counts_at(floor_to(sixteen_days_ago, HOUR))
