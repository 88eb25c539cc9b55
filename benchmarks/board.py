"""Read-path benchmark at a million runs: board, snapshot, run list, run page, admin.

    .venv/bin/python benchmarks/board.py                 # 1,000,000 runs on PostgreSQL
    .venv/bin/python benchmarks/board.py --runs 100000   # a quicker pass while developing
    .venv/bin/python benchmarks/board.py --keep          # leave runboard_bench for poking at
    .venv/bin/python benchmarks/board.py --database runboard_bench_fold --reuse --only-history
                                                         # fill once, then time again and again

Creates its own database `runboard_bench` (dropped at the end unless --keep; `--database` names
another, so that two benchmarks never share one) on the server of
BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres), migrates it, fills it
with set-based SQL (generate_series, not ORM saves) spread over the nine states, ANALYZEs, then
times each request in-process through Django's test client: server time including middleware,
session, permissions, queries and template rendering, no network. Medians and p95 in ms.

The baseline is a stock `ModelAdmin` for Run (default paginator with full counts, a state
filter): what a Django user would have without this work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "runboard_bench"
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")

# Share of runs per state, per mille: mostly finished, like a fleet that has run for a while.
STATE_SHARES = (("scheduled", 20), ("ready", 50), ("leased", 10), ("running", 20),
                ("retry_wait", 20), ("suspended", 10), ("completed", 700), ("failed", 120),
                ("canceled", 50))
QUEUES = 8
NAMES = 20


def database_url(name: str) -> str:
    parsed = urlparse(ADMIN_URL)
    return urlunparse(parsed._replace(path=f"/{name}"))


def recreate_database(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            [name]).fetchone() is not None


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def state_case() -> str:
    """SQL CASE mapping `i % 1000` to a state by STATE_SHARES."""
    arms, upper = [], 0
    for state, share in STATE_SHARES:
        upper += share
        arms.append(f"WHEN i % 1000 < {upper} THEN '{state}'")
    return "CASE " + " ".join(arms) + " END"


def fill(runs: int, days: int) -> None:
    """Insert `runs` runs over the last `days` days and their audit trails (about five moves
    each, `history_fill.PATHS`), set-based."""
    from django.db import connection

    from benchmarks import history_fill

    spacing = days * 86_400 / runs
    with connection.cursor() as cursor:
        history_fill.create_paths(cursor)
        # Created up to 20 minutes ago, so that even a failed run's last move (8 gaps of at
        # most 128 s later) is in the past.
        cursor.execute(f"""
            INSERT INTO runs_run (id, name, queue, payload, priority, state, version,
                scheduled_at, attempts, max_attempts, backoff_base_seconds, backoff_factor,
                backoff_cap_seconds, backoff_jitter, next_attempt_at, lease_owner,
                lease_expires_at, lease_seconds, heartbeat_at, progress, result, last_error,
                suspend_reason, suspended_by, budget, consumed, rerun_of_id, created_at,
                state_changed_at, started_at, finished_at)
            SELECT gen_random_uuid(), 'job-' || (i % {NAMES}), 'q' || (i % {QUEUES}),
                jsonb_build_object('n', i), (i % 3), s.state, 3,
                created, 1, 3, 2, 2, 300, 0.1,
                CASE WHEN s.state = 'retry_wait' THEN now() + interval '5 minutes' END,
                CASE WHEN s.state IN ('leased', 'running') THEN 'exec-' || (i % 16) ELSE '' END,
                CASE WHEN s.state IN ('leased', 'running') THEN now() + interval '30 seconds'
                END,
                30, CASE WHEN s.state = 'running' THEN now() END, NULL,
                CASE WHEN s.state = 'completed' THEN '{{"ok": true}}'::jsonb END,
                CASE WHEN s.state IN ('failed', 'retry_wait') THEN 'boom ' || i ELSE '' END,
                CASE WHEN s.state = 'suspended' THEN 'operator asked' ELSE '' END,
                CASE WHEN s.state = 'suspended' THEN 'operator' ELSE '' END,
                '{{}}'::jsonb, '{{}}'::jsonb, NULL, created,
                created + (cardinality(p.path) - 1) * (2 ^ (i % 8))::int * interval '1 second',
                CASE WHEN s.state IN ('running', 'completed', 'failed')
                     THEN created + 3 * (2 ^ (i % 8))::int * interval '1 second' END,
                CASE WHEN s.state IN ('completed', 'failed', 'canceled')
                     THEN created + (cardinality(p.path) - 1) * (2 ^ (i % 8))::int
                          * interval '1 second' END
            FROM (SELECT i, now() - interval '20 minutes'
                            - ({runs} - i) * {spacing} * interval '1 second' AS created,
                         {state_case()} AS state
                  FROM generate_series(1, {runs}) AS i) AS s
            JOIN bench_paths p ON p.state = s.state
        """)
        history_fill.fill_transitions(cursor)
        # What autovacuum does on a live table: statistics, and the visibility map that lets
        # counts and keyset pages be index-only scans.
        cursor.execute("VACUUM ANALYZE runs_run")
        cursor.execute("VACUUM ANALYZE runs_transition")


def fill_history() -> int:
    """The rollups, totals and cursor the fold would have left (see history_fill)."""
    from django.db import connection

    from benchmarks import history_fill

    with connection.cursor() as cursor:
        history_fill.fill_rollups(cursor)
        history_fill.fill_fold_state(cursor)
        cursor.execute("VACUUM ANALYZE runs_rollup")
        cursor.execute("VACUUM ANALYZE runs_statetotal")
        cursor.execute("SELECT count(*) FROM runs_rollup")
        return cursor.fetchone()[0]


def timed(label: str, call: Callable[[], object], repeat: int) -> tuple[str, float, float]:
    for _ in range(2):
        call()  # warm caches, connections, templates
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return label, statistics.median(samples), p95


def get(client, url: str) -> Callable[[], object]:
    def call() -> object:
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}")
        return response
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30, help="spread the runs over this many days")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--only-history", action="store_true",
                        help="skip the run list, run page and admin timings")
    parser.add_argument("--database", default=BENCH_DB,
                        help=f"the database to create and fill (default {BENCH_DB})")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    parser.add_argument("--reuse", action="store_true",
                        help="time a database a --keep or --reuse run left filled instead of "
                             "filling it again (implies --keep)")
    args = parser.parse_args()
    if not args.database.isidentifier():
        parser.error(f"--database {args.database!r}: letters, digits and _ only")
    args.keep = args.keep or args.reuse
    args.reuse = args.reuse and database_exists(args.database)

    if not args.reuse:
        recreate_database(args.database)
    os.environ["DATABASE_URL"] = database_url(args.database)
    os.environ.pop("REDIS_URL", None)  # in-memory layer: announcements stay in this process
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    try:
        run_benchmark(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(args.database)


def run_benchmark(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    # Not setup_test_environment(): its instrumented template rendering copies every context
    # and would dominate the timings. Only the test client's host name is needed.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.ROOT_URLCONF = "benchmarks.bench_urls"
    call_command("migrate", verbosity=0)

    from runs import services
    from runs.listing import PAGE_SIZE, Cursor

    if args.reuse:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM runs_run")
            print(f"reusing {args.database} ({cursor.fetchone()[0]:,} runs): no fill")
    else:
        started = time.perf_counter()
        fill(args.runs, args.days)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM runs_transition")
            transitions = cursor.fetchone()[0]
        print(f"filled {args.runs:,} runs (+ {transitions:,} audit rows over {args.days} days) "
              f"in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        rollups = fill_history()
        print(f"filled the history ({rollups:,} rollup rows, totals, cursor) in "
              f"{time.perf_counter() - started:.1f} s")

    # Runs with a real life, through the services, for the run page.
    lived = services.submit(name="bench-lived", queue="q0", max_attempts=3)
    services.cancel(lived.pk, actor="bench", reason="benchmark")
    queued = services.submit(name="bench-queued", queue="q1", priority=-1)

    user = (User.objects.filter(username="bench").first()
            or User.objects.create_superuser("bench", password="bench-password-1"))
    client = Client()
    client.force_login(user)

    with connection.cursor() as cursor:
        cursor.execute("SELECT state, count(*) FROM runs_run GROUP BY state")
        per_state = dict(cursor.fetchall())
        page = 500
        cursor.execute(
            "SELECT state_changed_at, id FROM runs_run WHERE state = 'failed' "
            "ORDER BY state_changed_at DESC, id DESC OFFSET %s LIMIT 1",
            [(page - 1) * PAGE_SIZE - 1])
        row = cursor.fetchone()
    page_500 = Cursor(row[0], row[1]).encode() if row else ""
    print("runs per state:", ", ".join(f"{s} {per_state.get(s, 0):,}" for s, _ in STATE_SHARES))

    from runs.history.fold import fold_all

    fold_all()  # the services' writes above, as the clock would fold them
    with connection.cursor() as cursor:
        # What autovacuum does on a server that runs it (migration 0010 sets it to vacuum the
        # deltas every 5,000 rows): without it the pages of compacted deltas and their stale
        # row counts made readers scan dead pages and plan parallel workers.
        cursor.execute("VACUUM ANALYZE runs_rollupdelta")
    check_history_consistent()

    results = []
    for label, call in board_timers(client, user) + history_timers(client, args.repeat):
        results.append(timed(label, call, args.repeat))
    if args.only_history:
        print_results(args, results, None)
        return
    results += [
        timed("GET /runs/?state=failed (page 1)", get(client, "/runs/?state=failed"),
              args.repeat),
        timed(f"GET /runs/?state=failed (page {page})",
              get(client, f"/runs/?state=failed&after={page_500}"), args.repeat),
        timed("GET /runs/ (all, page 1)", get(client, "/runs/"), args.repeat),
        timed("GET /runs/?q=<short id>", get(client, f"/runs/?q={queued.short_id}"),
              args.repeat),
        timed("GET /runs/<id>/ (canceled, timeline)", get(client, f"/runs/{lived.pk}/"),
              args.repeat),
        timed("GET /runs/<id>/ (ready: queue position)", get(client, f"/runs/{queued.pk}/"),
              args.repeat),
        timed("GET /admin/ changelist ?state=failed (ours)",
              get(client, "/admin/runs/run/?state__exact=failed"), args.repeat),
        timed("GET /admin/ changelist ?state=failed p500 (ours)",
              get(client, "/admin/runs/run/?state__exact=failed&p=200"), args.repeat),
    ]
    baseline = timed("BASELINE stock admin changelist ?state=failed",
                     get(client, "/baseline-admin/runs/run/?state__exact=failed"),
                     max(3, args.repeat // 3))
    results.append(baseline)
    print_results(args, results, baseline)


def print_results(args: argparse.Namespace, results: list[tuple[str, float, float]],
                  baseline: tuple[str, float, float] | None) -> None:
    print(f"\n{args.runs:,} runs on PostgreSQL, {args.repeat} requests each (median / p95, ms; "
          f"x = baseline median / median)")
    width = max(len(label) for label, *_ in results)
    for label, median, p95 in results:
        ratio = f"   x{baseline[1] / median:6.1f}" if baseline else ""
        print(f"  {label:<{width}}  {median:8.1f}  {p95:8.1f}{ratio}")


def check_history_consistent() -> None:
    """The filled history must agree with the runs: the counts checkpoint now equals an exact
    GROUP BY, and a past minute's counts are never negative."""
    from datetime import timedelta

    from django.db.models import Count
    from django.utils import timezone

    from runs.changelog.reader import consistent_read
    from runs.history.counts import counts_at, counts_now
    from runs.models import Run

    with consistent_read():
        now = counts_now()
        exact = dict(Run.objects.order_by().values_list("state").annotate(n=Count("pk")))
    wrong = {s: (n, exact.get(s, 0)) for s, n in now.items() if n != exact.get(s, 0)}
    if wrong:
        raise SystemExit(f"history totals disagree with the runs (totals, exact): {wrong}")
    for hours in (1, 23, 24 * 10):
        past = counts_at(timezone.now() - timedelta(hours=hours))
        if min(past.values()) < 0:
            raise SystemExit(f"negative past count {hours} h ago: {past}")
    print("history consistent: totals = GROUP BY state; past counts non-negative")


def history_timers(client, repeat: int) -> list[tuple[str, Callable[[], object]]]:
    """History data, the board at past moments, /metrics, and the fold of 1,000 changes."""
    from datetime import timedelta

    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from benchmarks import history_fill
    from runs.history.compaction import compact
    from runs.history.fold import FOLD_BATCH, fold

    settings.RUNBOARD["METRICS_ALLOW"] = ("127.0.0.1",)  # the test client's address

    def at(hours: float) -> str:
        return (timezone.now() - timedelta(hours=hours)).isoformat().replace("+", "%2B")

    def fold_batch() -> object:
        folded = fold()
        if folded != FOLD_BATCH:
            raise SystemExit(f"the fold took {folded} rows, not {FOLD_BATCH}")
        return folded

    def prepare_fold() -> Callable[[], object]:
        # Filled lazily, right before its timing: the other timings see a caught-up fold.
        # Warm-ups and timed batches of the two fold timers, and one to spare.
        batches = 2 * (repeat + 2) + 1
        with connection.cursor() as cursor:
            rows = history_fill.fill_change_stream(cursor, runs=batches * FOLD_BATCH // 4)
            cursor.execute("ANALYZE runs_change")
        print(f"change log: {rows:,} rows of new runs for the fold")
        return fold_batch

    prepared: list[Callable[[], object]] = []

    def fold_timer() -> object:
        if not prepared:
            prepared.append(prepare_fold())
        return prepared[0]()

    def fold_and_compact() -> object:
        # The clock compacts after each round of batches; here after every batch, the most
        # it can cost per batch (the first call also merges what the fold timer left).
        folded = fold_timer()
        compact()
        return folded

    return [
        ("GET /history/data?range=1h", get(client, "/history/data?range=1h")),
        ("GET /history/data?range=24h", get(client, "/history/data?range=24h")),
        ("GET /history/data?range=7d", get(client, "/history/data?range=7d")),
        ("GET /history/?range=24h (page)", get(client, "/history/?range=24h")),
        ("GET /history/data?range=7d&name=job-3", get(client, "/history/data?range=7d&name=job-3")),
        ("GET /board/at?at=<1 h ago> (scrubber)", get(client, f"/board/at?at={at(1)}")),
        ("GET /board/at?at=<23 h ago> (scrubber)", get(client, f"/board/at?at={at(23)}")),
        ("GET /?at=<6 h ago> (board page, past)", get(client, f"/?at={at(6)}")),
        ("GET /metrics", get(client, "/metrics")),
        ("fold 1,000 changes into rollups", fold_timer),
        ("fold 1,000 changes, then compact them", fold_and_compact),
    ]


def board_timers(client, user) -> list[tuple[str, Callable[[], object]]]:
    """The board page and its snapshot, cold (counting) and as a live server serves them."""
    from unittest import mock

    from dashboard.board import board_snapshot, column_limit, read_board
    from runs.selectors import BoardFilter, newest_cards, state_counts

    counts = state_counts(BoardFilter())  # what a hub keeps per process, moved by events

    def socket_snapshot() -> object:
        # What the consumer sends on connect: fresh cards, the hub's shared exact counts.
        limit = column_limit()
        return board_snapshot(BoardFilter(), user=user, counts=counts,
                              cards=newest_cards(BoardFilter(), limit=limit), limit=limit)

    def page_with_live_hub() -> object:
        # A page load in a process whose hub already keeps this filter's counts (any board
        # open on that server process): the view reuses them instead of counting.
        with mock.patch("dashboard.board.shared_counts", return_value=dict(counts)):
            return get(client, "/")()

    return [
        ("GET / (board page, counts queried)", get(client, "/")),
        ("GET / (board page, counts from a live hub)", page_with_live_hub),
        ("board snapshot, socket (cards + hub counts)", socket_snapshot),
        ("board snapshot, cold (cards + counting)", lambda: read_board(BoardFilter(), user=user)),
    ]

if __name__ == "__main__":
    main()
