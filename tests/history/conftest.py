"""Random histories from the lifecycle, and brute-force answers computed from the audit trail."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runs import services
from runs.exceptions import TransitionError
from runs.history.buckets import GRAINS, latency_bucket
from runs.history.models import ALL
from runs.models import Run, Transition
from runs.states import ALLOWED_MOVES, RunState

QUEUES = ("default", "emails", "reports")
NAMES = ("send-report", "resize-image", "sync-crm")
# A moment on no bucket boundary, so generated steps straddle minutes, ten minutes and hours.
EPOCH = datetime(2026, 11, 30, 9, 58, 37, tzinfo=UTC)


def _changes(run: Run, target: RunState, now: datetime, rng: random.Random) -> dict[str, Any]:
    if target == RunState.LEASED:
        return {"lease_owner": f"exec-{rng.randint(1, 3)}",
                "lease_expires_at": now + timedelta(seconds=rng.choice((20, 90)))}
    if target == RunState.RETRY_WAIT:
        return {"last_error": rng.choice(("Timeout: upstream\nTraceback …", "KeyError: 'id'")),
                "next_attempt_at": now + timedelta(seconds=rng.randint(1, 120))}
    if target == RunState.FAILED:
        return {"last_error": rng.choice(("Timeout: upstream\nat line 3", "ValueError: bad"))}
    if target == RunState.SUSPENDED:
        return {"suspend_reason": "operator asked", "suspended_by": "operator"}
    if target == RunState.COMPLETED:
        return {"result": {"ok": True}}
    return {}


def generate(count: int, *, seed: int, start: datetime = EPOCH, max_steps: int = 9,
             spread_seconds: int = 3 * 3600) -> list[Run]:
    """`count` runs walked at random through the lifecycle with the clock passed as `now=`.

    Each run is submitted at a random moment within `spread_seconds` of `start` (some of them
    scheduled for later) and then takes up to `max_steps` allowed moves, each after a random
    0.2 s to 15 min, so its stints cross bucket boundaries. A move a guard refuses is skipped.
    """
    rng = random.Random(seed)
    runs = []
    for _ in range(count):
        now = start + timedelta(seconds=rng.uniform(0, spread_seconds))
        scheduled = now + timedelta(seconds=rng.randint(5, 400)) if rng.random() < 0.2 else None
        run = services.submit(name=rng.choice(NAMES), queue=rng.choice(QUEUES), now=now,
                              scheduled_at=scheduled, max_attempts=rng.randint(1, 3))
        for _step in range(rng.randint(0, max_steps)):
            now += timedelta(seconds=rng.choice((0.2, 3, 45, 130, 700, 900)) * rng.random())
            state = RunState(run.state)
            if state.is_terminal:
                break
            targets = sorted(ALLOWED_MOVES[state])  # a set's order varies per process
            rng.shuffle(targets)
            if RunState.CANCELED in targets and rng.random() < 0.8:
                # Cancel is allowed from everywhere: left at even odds, few runs get far.
                targets.remove(RunState.CANCELED)
            for target in targets:
                try:
                    run.transition_to(target, actor="gen", now=now,
                                      **_changes(run, target, now, rng))
                    break
                except TransitionError:
                    continue
        runs.append(run)
    return runs


def _dims(queue: str, name: str) -> tuple[tuple[str, str], ...]:
    return ((queue, name), (queue, ALL), (ALL, ALL))


def _start(moment: datetime, grain: int) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp()) // grain * grain, tz=UTC)


def brute_rollups() -> dict[tuple[int, str, str, datetime, str, int], list[int]]:
    """Every rollup counter recomputed from scratch over the audit trail."""
    expected: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    runs = {run.pk: (run.queue, run.name) for run in Run.objects.all()}
    by_run: dict[Any, list[Transition]] = defaultdict(list)
    for row in Transition.objects.order_by("run_id", "id"):
        by_run[row.run_id].append(row)

    def add(queue: str, name: str, at: datetime, measure: str, bucket: int = 0,
            milliseconds: int = 0) -> None:
        for grain in GRAINS:
            for dims in _dims(queue, name):
                counter = expected[(grain, *dims, _start(at, grain), measure, bucket)]
                counter[0] += 1
                counter[1] += milliseconds
        counter = expected[(0, ALL, ALL, datetime(1970, 1, 1, tzinfo=UTC), measure, bucket)]
        counter[0] += 1
        counter[1] += milliseconds

    for run_id, rows in by_run.items():
        queue, name = runs[run_id]
        for previous, row in zip([None, *rows], rows, strict=False):
            if previous is None:
                add(queue, name, row.at, "submitted")
                add(queue, name, row.at, f"in:{row.to_state}")
                continue
            add(queue, name, row.at, f"out:{row.from_state}")
            add(queue, name, row.at, f"in:{row.to_state}")
            milliseconds = max(0, round((row.at - previous.at).total_seconds() * 1000))
            bucket = latency_bucket(milliseconds)
            add(queue, name, row.at, f"dwell:{row.from_state}", bucket, milliseconds)
            if (row.from_state, row.to_state) == ("ready", "leased"):
                add(queue, name, row.at, "wait", bucket, milliseconds)
            if row.from_state == "running" and RunState(row.to_state).is_terminal:
                add(queue, name, row.at, "run", bucket, milliseconds)
    return dict(expected)


def stored_rollups() -> dict[tuple[int, str, str, datetime, str, int], list[int]]:
    """The rollups as readers see them: the rows plus the increments not compacted into them
    (each counted in every grain and dimension, and all time)."""
    from runs.history.models import Rollup, RollupDelta

    stored: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for r in Rollup.objects.all():
        counter = stored[(r.grain, r.queue, r.name, r.start, r.measure, r.bucket)]
        counter[0] += r.count
        counter[1] += r.total_ms
    for d in RollupDelta.objects.all():
        keys = [(grain, *dims, _start(d.start, grain), d.measure, d.bucket)
                for grain in GRAINS for dims in _dims(d.queue, d.name)]
        keys.append((0, ALL, ALL, datetime(1970, 1, 1, tzinfo=UTC), d.measure, d.bucket))
        for key in keys:
            stored[key][0] += d.count
            stored[key][1] += d.total_ms
    return {key: counter for key, counter in stored.items() if any(counter)}


def brute_counts_at(moment: datetime, *, queue: str = "", name: str = "") -> dict[str, int]:
    """How many runs were in each state just before `moment` (every move stamped earlier),
    from the audit trail alone."""
    counts = dict.fromkeys((str(state) for state in RunState), 0)
    latest: dict[Any, str] = {}
    rows = Transition.objects.filter(at__lt=moment).select_related("run").order_by("id")
    for row in rows:
        if (queue and row.run.queue != queue) or (name and row.run.name != name):
            continue
        latest[row.run_id] = row.to_state
    for state in latest.values():
        counts[state] += 1
    return counts


def fold_everything(*, limit: int = 1_000, deadline: float = 30.0, compact: bool = True) -> None:
    """Fold until every committed log row is folded, then (unless not `compact`) merge the
    appended increments into the rollups, as the clock does. On PostgreSQL a transaction open
    anywhere in the cluster (other databases too) holds the reader's watermark back, so a short
    batch does not mean "caught up": poll with a deadline."""
    import time

    from django.db.models import Max

    from runs.changelog.models import Change
    from runs.history import compaction
    from runs.history.fold import fold
    from runs.history.models import FoldCursor

    newest = Change.objects.aggregate(newest=Max("id"))["newest"] or 0
    give_up = time.monotonic() + deadline
    while True:
        fold(limit=limit)
        if FoldCursor.objects.filter(change_id__gte=newest).exists() or newest == 0:
            if compact:
                compaction.compact()
            return
        assert time.monotonic() < give_up, "the fold did not catch up with the log"
        time.sleep(0.05)


@pytest.fixture
def history():
    return generate
