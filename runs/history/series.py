"""The History page's data: per-bucket series for one range and filter, read from rollups.

One query over the rollup rows of the range's grain (the all-queues/all-names rows, one
queue's rows, or one name's rows) plus the totals for the cumulative flow; never the audit
trail or the change log.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import BigIntegerField, Func, QuerySet, Sum
from django.db.models.functions import Cast
from django.utils import timezone

from runs.states import RunState

from .buckets import HOUR, MINUTE, TEN_MINUTES, ceil_to, percentile
from .counts import HistoryUnavailable, apply_moves, counts_at, rollup_rows, summed
from .models import Rollup, RollupDelta, StateTotal

STATES = tuple(str(state) for state in RunState)
FINISHED = ("completed", "failed", "canceled")
QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


class EpochSeconds(Func):
    """A timestamp as whole seconds since the epoch, computed by the database: parsing ten
    thousand timestamps into aware datetimes cost more than the query that read them."""

    output_field = BigIntegerField()
    template = "CAST(EXTRACT(EPOCH FROM %(expressions)s) AS BIGINT)"

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(compiler, connection, template=(
            "CAST(ROUND((julianday(%(expressions)s) - 2440587.5) * 86400.0) AS INTEGER)"),
            **extra)


@dataclass(frozen=True)
class Range:
    key: str
    label: str
    span: timedelta
    grain: int


RANGES: dict[str, Range] = {
    "1h": Range("1h", "Last hour", timedelta(hours=1), MINUTE),
    "24h": Range("24h", "Last 24 hours", timedelta(hours=24), TEN_MINUTES),
    "7d": Range("7d", "Last 7 days", timedelta(days=7), HOUR),
}
DEFAULT_RANGE = "1h"


class UnknownRange(ValueError):
    """The range is not one of `RANGES`."""

    code = "unknown_range"


def history_series(*, range_key: str = DEFAULT_RANGE, queue: str = "", name: str = "",
                   now: datetime | None = None) -> dict[str, Any]:
    """Every chart of the History page for one range and (queue, name) filter, JSON-ready.

    Times are bucket starts in epoch seconds; latencies are in milliseconds (the upper edge
    of the histogram bucket holding the quantile, so within ~19 % above the true value).
    """
    chosen = RANGES.get(range_key)
    if chosen is None:
        raise UnknownRange(f"unknown range {range_key!r}: use one of {', '.join(RANGES)}")
    now = now or timezone.now()
    end = ceil_to(now, chosen.grain)
    start = end - chosen.span
    starts = [start + timedelta(seconds=chosen.grain * i)
              for i in range(int(chosen.span.total_seconds()) // chosen.grain)]
    index = {int(moment.timestamp()): i for i, moment in enumerate(starts)}
    rows = _rows(chosen.grain, queue, name, start, end)
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(starts))
    histograms: dict[str, list[dict[int, int]]] = defaultdict(
        lambda: [defaultdict(int) for _ in starts])
    dwell_total: dict[str, list[int]] = defaultdict(lambda: [0] * len(starts))
    has_histogram: dict[str, bool] = {}
    grain = chosen.grain
    for second, measure, bucket, count, total_ms in rows:
        # Floored: increments not yet compacted come per minute (see `rollup_rows`).
        i = index.get(second // grain * grain)
        if i is None:
            continue
        histogram = has_histogram.get(measure)
        if histogram is None:
            histogram = has_histogram[measure] = (
                measure in ("wait", "run") or measure.startswith("dwell:"))
        if histogram:
            histograms[measure][i][bucket] += count
            dwell_total[measure][i] += total_ms
        counts[measure][i] += count  # a key may come several times: callers add

    def quantiles(measure: str) -> dict[str, list[float | None]]:
        per_bucket = histograms.get(measure) or [{} for _ in starts]
        return {label: [percentile(h, q) for h in per_bucket] for label, q in QUANTILES}

    def mean(measure: str) -> list[float | None]:
        return [(dwell_total[measure][i] / counts[measure][i]) if counts[measure][i] else None
                for i in range(len(starts))]

    return {
        "range": {"key": chosen.key, "label": chosen.label, "grain": chosen.grain,
                  "start": start.isoformat(), "end": end.isoformat()},
        "filter": {"queue": queue, "name": name},
        "times": [int(moment.timestamp()) for moment in starts],
        "throughput": {"submitted": counts["submitted"],
                       **{state: counts[f"in:{state}"] for state in FINISHED}},
        "wait": quantiles("wait"),
        "run": quantiles("run"),
        "dwell": {state: mean(f"dwell:{state}") for state in STATES
                  if not RunState(state).is_terminal},
        "flow": _flow(starts, counts, end, queue, name),
    }


def _rows(grain: int, queue: str, name: str, start: datetime, end: datetime
          ) -> list[tuple[int, str, int, int, int]]:
    """(bucket start in epoch seconds, measure, histogram bucket, count, total ms) of every
    rollup row and every uncompacted increment in [start, end), as plain ints.

    Rows of one bucket key are added in Python, not grouped in the database: without a name
    filter a key is one rollup row (plus, rarely, a few increments), and grouping the week's
    12,000 rows was half the query's time. A name filter reads per-name rows, possibly many
    per key, so those are summed in the database. Fetched on a plain cursor: Django's per-row
    converters cost as much as the query for the ten thousand rows of a week.
    """
    def branch(model: type[Rollup] | type[RollupDelta]) -> QuerySet:
        rows = (rollup_rows(grain, queue, name, model=model)
                .filter(start__gte=start, start__lt=end).annotate(second=EpochSeconds("start"))
                .order_by())
        if model is Rollup and not name:
            return rows.values_list("second", "measure", "bucket", "count", "total_ms")
        # Cast: PostgreSQL's SUM of a bigint is a numeric, which arrives as a Decimal.
        return rows.values_list("second", "measure", "bucket").annotate(
            n=Cast(Sum("count"), BigIntegerField()), ms=Cast(Sum("total_ms"), BigIntegerField()))

    query = summed(branch)
    sql, params = query.query.sql_with_params()
    with connections[query.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _flow(starts: list[datetime], counts: dict[str, list[int]], end: datetime, queue: str,
          name: str) -> dict[str, list[int]] | None:
    """Runs per state at the end of each bucket (the cumulative flow), walked back from the
    exact counts at the range's end; None before the fold has counted."""
    try:
        current = counts_at(end, queue=queue, name=name)
    except HistoryUnavailable:
        return None
    flow = {state: [0] * len(starts) for state in STATES}
    for i in reversed(range(len(starts))):
        for state in STATES:
            flow[state][i] = current[state]
        apply_moves(current, [(f"{kind}:{state}", counts[f"{kind}:{state}"][i])
                              for kind in ("in", "out") for state in STATES], -1)
    return flow


def filter_choices() -> dict[str, list[str]]:
    """The queues and run names the history knows (for the page's filter menus): the fold's
    totals hold a row per (queue, name, state) it ever counted, a few hundred rows, where
    the hour rollups hold thousands per day."""
    keys = StateTotal.objects.order_by().values_list("queue", "name").distinct()
    queues, names = set(), set()
    for queue, name in keys:
        queues.add(queue)
        names.add(name)
    return {"queues": sorted(queues), "names": sorted(names)}
