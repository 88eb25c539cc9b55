"""`GET /metrics`: Prometheus text exposition of the board's numbers.

Protected by `RUNBOARD["METRICS_TOKEN"]` (`Authorization: Bearer <token>`) and/or
`RUNBOARD["METRICS_ALLOW"]` (client addresses); with neither set the endpoint does not exist
(404), so nothing leaks by default.

What a scrape reads:
- runs by state and queue: the history's exact totals (`runs.history.counts`: a small table of
  (queue, name, state) counters plus the unfolded log tail), or, when no fold has counted
  yet, the exact counts of this process's hub for the unfiltered board;
- transitions by target state and the queue-wait / run-time histograms: the fold's all-time
  rollup rows (one query of about a hundred rows, monotonic across processes and restarts);
- watchers, frames, deliveries and log lag: this process's hub(s) (`hub.stats`, no query
  except the newest log row for the lag).
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db.models import Sum
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from runs.changelog.reader import newest_at
from runs.history.buckets import ALL_TIME, STEPS_PER_DOUBLING
from runs.history.counts import HistoryUnavailable, counts_by_queue, rollup_rows, summed
from runs.history.models import ALL
from runs.selectors import BoardFilter
from runs.states import RunState

from .hub import active_hubs

# Histogram `le` bounds in seconds: powers of two from 1 ms to ~18 h. Each is an edge of the
# rollup's log-scaled buckets (four per doubling), so the cumulative counts are exact.
LE_POWERS = range(0, 27)


class _Collector:
    def collect(self) -> Any:
        yield _runs()
        moves, histograms = _all_time()
        transitions = CounterMetricFamily("runboard_transitions", "Moves into each state "
                                          "(creations included), all time", labels=["to_state"])
        for state in RunState:
            transitions.add_metric([str(state)], moves.get(str(state), 0))
        yield transitions
        for measure, title in (("wait", "Queue wait, ready to leased"),
                               ("run", "Run time, running to finished")):
            yield _histogram(f"runboard_{'queue_wait' if measure == 'wait' else 'run_time'}"
                             "_seconds", title, histograms.get(measure, {}))
        yield from _hub_metrics()


def _runs() -> GaugeMetricFamily:
    gauge = GaugeMetricFamily("runboard_runs", "Runs in each state per queue (exact)",
                              labels=["state", "queue"])
    try:
        for (queue, state), count in sorted(counts_by_queue().items()):
            gauge.add_metric([state, queue], count)
    except HistoryUnavailable:
        for hub in active_hubs():
            stream = hub.streams.get(("board", BoardFilter()))
            if stream is not None and stream.counts is not None:
                for state, count in stream.counts.items():
                    gauge.add_metric([state, ""], count)
                break
    return gauge


def _all_time() -> tuple[dict[str, int], dict[str, dict[int, tuple[int, int]]]]:
    moves: dict[str, int] = {}
    histograms: dict[str, dict[int, tuple[int, int]]] = defaultdict(dict)
    rows = summed(lambda model: rollup_rows(ALL_TIME, ALL, ALL, model=model)
                  .order_by().values_list("measure", "bucket")
                  .annotate(n=Sum("count"), ms=Sum("total_ms")))
    for measure, bucket, count, total_ms in rows:  # a key may come twice: rollup and delta
        if measure.startswith("in:"):
            moves[measure[3:]] = moves.get(measure[3:], 0) + int(count)
        elif measure in ("wait", "run"):
            n, ms = histograms[measure].get(bucket, (0, 0))
            histograms[measure][bucket] = (n + int(count), ms + int(total_ms))
    return moves, histograms


def _histogram(name: str, documentation: str,
               buckets: dict[int, tuple[int, int]]) -> HistogramMetricFamily:
    points, total_ms, count = [], 0, 0
    for power in LE_POWERS:
        edge = power * STEPS_PER_DOUBLING  # buckets below this index end at or under 2^power ms
        points.append((repr(2 ** power / 1000), sum(n for b, (n, _) in buckets.items()
                                                    if b < edge)))
    for n, ms in buckets.values():
        count += n
        total_ms += ms
    points.append(("+Inf", count))
    return HistogramMetricFamily(name, documentation, buckets=points, sum_value=total_ms / 1000)


def _hub_metrics() -> Any:
    hubs = active_hubs()
    watchers = GaugeMetricFamily("runboard_watchers", "Open board and run-page sockets here")
    watchers.add_metric([], sum(len(s.watchers) for hub in hubs for s in hub.streams.values()))
    yield watchers
    for key, title in (("frames", "Frames sent to sockets"),
                       ("deliveries", "Run changes delivered in frames"),
                       ("rows", "Change-log rows read by this process's hub")):
        counter = CounterMetricFamily(f"runboard_hub_{key}", title)
        counter.add_metric([], sum(hub.stats[key] for hub in hubs))
        yield counter
    lag = GaugeMetricFamily("runboard_hub_log_lag_seconds",
                            "How far this process's hub reads behind the newest change")
    newest = newest_at() if hubs else None
    lag.add_metric([], max((hub.lag_behind(newest) for hub in hubs), default=0.0))
    yield lag


def _allowed(request: HttpRequest) -> bool:
    token = settings.RUNBOARD.get("METRICS_TOKEN") or ""
    allow = settings.RUNBOARD.get("METRICS_ALLOW") or ()
    if not token and not allow:
        raise Http404("metrics are off: set RUNBOARD['METRICS_TOKEN'] or ['METRICS_ALLOW']")
    if allow and request.META.get("REMOTE_ADDR") in allow:
        return True
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and hmac.compare_digest(given.encode(), str(token).encode())


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition (401 with code `metrics_token` when not allowed)."""
    if not _allowed(request):
        response = HttpResponse("metrics_token: a valid bearer token is required\n",
                                status=401, content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = "Bearer"
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
