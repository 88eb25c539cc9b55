"""Retention of fine rollup rows: minute rows past `KEEP[MINUTE]`, ten-minute rows past
`KEEP[TEN_MINUTES]`, deleted in bounded batches from the clock.

Hour rows and the all-time rows are kept: the 7-day range and /metrics read them, and they are
a few rows per hour. The windows cover every reader of the finer grains: the History page's
"last hour" (minute rows) and "last 24 hours" (ten-minute rows), the scrubber's 24 hours of
past moments (minute rows). A past moment older than the minute window is still exact, at the
finest grain still kept there (`precision_at`): ten minutes, then an hour.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import router, transaction
from django.utils import timezone

from .buckets import HOUR, MINUTE, TEN_MINUTES, floor_to
from .models import Rollup

# Two days of minutes and two weeks of ten minutes: twice what the page and the scrubber read,
# so a clock that was down for a day loses nothing anyone looks at.
KEEP: dict[int, timedelta] = {MINUTE: timedelta(days=2), TEN_MINUTES: timedelta(days=14)}
PRUNE_BATCH = 5_000


def kept_since(grain: int, *, now: datetime | None = None) -> datetime | None:
    """The oldest moment from which rows of `grain` are all still there (None: always)."""
    keep = KEEP.get(grain)
    return None if keep is None else (now or timezone.now()) - keep


def precision_at(moment: datetime, *, now: datetime | None = None) -> int:
    """The finest grain whose rows still cover `moment` (what a past count can be exact to)."""
    for grain in (MINUTE, TEN_MINUTES):
        since = kept_since(grain, now=now)
        if since is None or moment >= since:
            return grain
    return HOUR


def prune_rollups(*, now: datetime | None = None, batch: int = PRUNE_BATCH,
                  max_batches: int | None = None) -> int:
    """Delete minute and ten-minute rows past their window, oldest first, `batch` rows per
    short transaction (at most `max_batches`); return how many were deleted."""
    now = now or timezone.now()
    alias = router.db_for_write(Rollup)
    deleted = batches = 0
    for grain, keep in KEEP.items():
        # Whole buckets only: a bucket is either all there or all gone.
        cutoff = floor_to(now - keep, grain)
        while max_batches is None or batches < max_batches:
            with transaction.atomic(using=alias):
                ids = list(Rollup.objects.using(alias)
                           .filter(grain=grain, start__lt=cutoff)
                           .order_by("start").values_list("pk", flat=True)[:batch])
                if ids:
                    Rollup.objects.using(alias).filter(pk__in=ids).delete()
            batches += 1
            deleted += len(ids)
            if len(ids) < batch:
                break
    return deleted
