"""The History page's series against brute force over the audit trail."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from runs.history.buckets import latency_bucket, percentile
from runs.history.series import UnknownRange, history_series
from runs.models import Transition

from .conftest import EPOCH, brute_counts_at, fold_everything


def _bucket_of(moment: datetime, times: list[int], grain: int) -> int | None:
    second = int(moment.timestamp()) // grain * grain
    return times.index(second) if second in times else None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("range_key", "queue", "name"), [
    ("1h", "", ""), ("24h", "emails", ""), ("24h", "", "sync-crm"),
    ("7d", "reports", "send-report"),
])
def test_series_match_the_audit_trail(history, range_key, queue, name):
    history(150, seed=30)
    fold_everything()
    now = EPOCH + timedelta(minutes=75)  # the 1 h range cuts through the generated history
    data = history_series(range_key=range_key, queue=queue, name=name, now=now)
    times, grain = data["times"], data["range"]["grain"]
    finished, submitted = Counter(), Counter()
    waits: dict[int, Counter] = {}
    rows = Transition.objects.select_related("run").order_by("run_id", "id")
    previous: dict = {}
    for row in rows:
        before = previous.get(row.run_id)
        previous[row.run_id] = row
        if (queue and row.run.queue != queue) or (name and row.run.name != name):
            continue
        i = _bucket_of(row.at, times, grain)
        if i is None:
            continue
        if not row.from_state:
            submitted[i] += 1
        if row.to_state == "failed":
            finished[i] += 1
        if (row.from_state, row.to_state) == ("ready", "leased"):
            ms = max(0, round((row.at - before.at).total_seconds() * 1000))
            waits.setdefault(i, Counter())[latency_bucket(ms)] += 1
    assert data["throughput"]["submitted"] == [submitted[i] for i in range(len(times))]
    assert data["throughput"]["failed"] == [finished[i] for i in range(len(times))]
    assert data["wait"]["p95"] == [percentile(waits.get(i, {}), 0.95) for i in range(len(times))]
    assert sum(data["throughput"]["submitted"]) > 0
    for i in (0, len(times) // 2, len(times) - 1):
        bucket_end = datetime.fromtimestamp(times[i] + grain, tz=UTC)
        counts = brute_counts_at(bucket_end, queue=queue, name=name)
        assert {state: data["flow"][state][i] for state in counts} == counts


def test_an_unknown_range_is_refused_with_a_code():
    with pytest.raises(UnknownRange) as refused:
        history_series(range_key="5y")
    assert refused.value.code == "unknown_range"
