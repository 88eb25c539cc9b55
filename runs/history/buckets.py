"""Time buckets and log-scaled latency buckets shared by the fold and its readers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

# Bucket widths the fold keeps, in seconds: a minute (the last hour, past moments), ten
# minutes (a day) and an hour (a week and longer).
GRAINS: tuple[int, ...] = (60, 600, 3600)
MINUTE, TEN_MINUTES, HOUR = GRAINS
# One more grain, for every queue and name together only: all time in one bucket starting at
# the epoch (the monotonic counters and histograms of /metrics).
ALL_TIME = 0

# Latency buckets: four per doubling of milliseconds (each ~19 % wide). Bucket b holds
# durations in [2^(b/4), 2^((b+1)/4)) ms; bucket 0 also holds everything under 1 ms.
STEPS_PER_DOUBLING = 4
MAX_BUCKET = 160  # 2^40 ms, about 35 years


def floor_to(moment: datetime, grain: int) -> datetime:
    """The start of the `grain`-second bucket holding `moment` (UTC, aware)."""
    moment = moment.astimezone(UTC)
    seconds = int(moment.timestamp()) // grain * grain
    return datetime.fromtimestamp(seconds, tz=UTC)


def ceil_to(moment: datetime, grain: int) -> datetime:
    start = floor_to(moment, grain)
    return start if start == moment else start + timedelta(seconds=grain)


def latency_bucket(milliseconds: float) -> int:
    if milliseconds < 1:
        return 0
    return min(MAX_BUCKET, math.floor(STEPS_PER_DOUBLING * math.log2(milliseconds)))


def bucket_upper_ms(bucket: int) -> float:
    """The upper edge of a latency bucket: what a percentile read from it reports."""
    return 2 ** ((bucket + 1) / STEPS_PER_DOUBLING)


def percentile(histogram: Mapping[int, int], fraction: float) -> float | None:
    """The upper edge of the bucket holding the `fraction` quantile (nearest rank), in ms."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_upper_ms(bucket)
    return bucket_upper_ms(max(histogram))
