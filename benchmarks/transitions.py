"""Transition throughput: `Run.transition_to` beside the same SQL by hand, and `services.lease`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/runboard \
        .venv/bin/python benchmarks/transitions.py     # PostgreSQL, then SQLite (WAL)
    .venv/bin/python benchmarks/transitions.py         # SQLite (WAL) in a temp file

It never touches the configured database itself: on PostgreSQL it creates (and afterwards
drops) a `runboard_bench` database on the same server, on SQLite it uses a temporary file.

What it measures, each writer a separate process working on its own runs (so there is no
contention by design, only the cost of a transition):
- transitions/s through `Run.transition_to` with 1, 4 and 16 writers, cycling every run through
  ready → leased → running → suspended → ready (four different moves, all with their guards,
  field effects, audit row and on-commit announcement);
- the same four compare-and-set UPDATEs plus audit INSERTs written by hand in raw SQL on the
  driver's own connection (BEGIN; UPDATE … WHERE id AND state AND version; INSERT; COMMIT);
- the ratio of the two (absolute numbers drift 30 to 40 % within an hour here; ratios don't),
  once for the core alone (no `run_changed` subscriber) and once with the subscribers the
  installed apps connect (the dashboard's broadcast to the channel layer), as deployed;
- `services.lease` throughput with 8 executor processes over 100,000 ready runs, checking that
  no run was leased twice;
- on SQLite, that no writer ever saw "database is locked" (on PostgreSQL: no deadlock).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "runboard_bench"


# -- database setup (before Django is configured) ------------------------------------------------


def bench_database_url(configured: str | None) -> tuple[str, str]:
    """(url of the benchmark database, vendor); creates it on PostgreSQL."""
    if configured and configured.startswith(("postgres://", "postgresql://")):
        import psycopg

        parsed = urlparse(configured)
        admin = urlunparse(parsed._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {BENCH_DATABASE}")
        return urlunparse(parsed._replace(path=f"/{BENCH_DATABASE}")), "postgresql"
    path = Path(tempfile.mkdtemp(prefix="runboard-bench-")) / "bench.sqlite3"
    return f"sqlite:///{path}", "sqlite"


def drop_bench_database(url: str, vendor: str) -> None:
    if vendor == "postgresql":
        import psycopg

        admin = urlunparse(urlparse(url)._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
    else:
        path = Path(urlparse(url).path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.rmdir()


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# -- the workloads ------------------------------------------------------------------------------


def make_runs(count: int, *, state: str = "ready") -> list[uuid.UUID]:
    from runs.models import Run

    now = datetime.now(UTC)
    runs = [Run(name="bench", state=state, max_attempts=10**6, created_at=now, scheduled_at=now,
                state_changed_at=now + timedelta(microseconds=i)) for i in range(count)]
    created: list[uuid.UUID] = []
    for start in range(0, count, 5000):
        created += [run.pk for run in Run.objects.bulk_create(runs[start:start + 5000])]
    return created


def classify(error: BaseException) -> str:
    text = str(error).lower()
    if "database is locked" in text or "database table is locked" in text:
        return "database is locked"
    if "deadlock" in text:
        return "deadlock"
    return type(error).__name__


def orm_writer(run_ids: list[uuid.UUID], stop_at: float) -> tuple[int, Counter]:
    """Cycle runs through four moves with `transition_to`, keeping each instance current."""
    from runs.models import Run
    from runs.states import RunState

    errors: Counter = Counter()
    runs = [Run.objects.get(pk=run_id) for run_id in run_ids]
    moves = 0
    while time.monotonic() < stop_at:
        for index, run in enumerate(runs):
            try:
                now = datetime.now(UTC)
                run.transition_to(RunState.LEASED, actor="bench", lease_owner="bench",
                                  lease_expires_at=now + timedelta(seconds=60), now=now)
                run.transition_to(RunState.RUNNING, actor="bench", now=now)
                run.transition_to(RunState.SUSPENDED, actor="bench", reason="bench", now=now)
                run.transition_to(RunState.READY, actor="bench", now=now)
                moves += 4
            except Exception as error:  # counted and reported, never hidden
                errors[classify(error)] += 1
                runs[index] = Run.objects.get(pk=run.pk)
                if runs[index].state != RunState.READY:
                    runs[index].transition_to(RunState.CANCELED)
                    runs[index] = Run.objects.get(pk=make_runs(1)[0])
    return moves, errors


RAW_MOVES = (
    # (from, to, extra SET clause, parameters(now) for it, attempt after)
    ("ready", "leased", "lease_owner = %s, lease_expires_at = %s",
     lambda now: ["bench", now + timedelta(seconds=60)], 0),
    ("leased", "running", "attempts = %s, started_at = %s, heartbeat_at = %s, progress = NULL",
     lambda now: [1, now, now], 1),
    ("running", "suspended", "attempts = %s, suspend_reason = %s, suspended_by = %s, "
     "lease_owner = '', lease_expires_at = NULL", lambda now: [0, "bench", "operator"], 0),
    ("suspended", "ready", "suspend_reason = '', suspended_by = '', next_attempt_at = NULL",
     lambda now: [], 0),
)


def raw_writer(run_ids: list[uuid.UUID], stop_at: float) -> tuple[int, Counter]:
    """The same four moves as compare-and-set UPDATE + audit INSERT on the driver connection."""
    from django.db import connection

    from runs.models import Run

    sqlite = connection.vendor == "sqlite"
    connection.ensure_connection()
    raw = connection.connection  # the DB-API connection itself: no ORM, no Django cursor

    def prepare(sql: str) -> str:
        return sql.replace("%s", "?") if sqlite else sql

    def db_value(value):
        if sqlite and isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
        if sqlite and isinstance(value, uuid.UUID):
            return value.hex
        return value

    statements = [
        (prepare(f"UPDATE runs_run SET state = %s, version = %s, state_changed_at = %s, {extra} "
                 "WHERE id = %s AND state = %s AND version = %s"), source, target, params, attempt)
        for source, target, extra, params, attempt in RAW_MOVES
    ]
    insert = prepare("INSERT INTO runs_transition (run_id, from_state, to_state, at, actor, "
                     "reason, attempt) VALUES (%s, %s, %s, %s, %s, %s, %s)")
    versions = {run_id: Run.objects.get(pk=run_id).version for run_id in run_ids}
    errors: Counter = Counter()
    moves = 0
    if not sqlite:
        raw.autocommit = False
    cursor = raw.cursor()
    while time.monotonic() < stop_at:
        for run_id in run_ids:
            now = datetime.now(UTC)
            for update, source, target, params, attempt in statements:
                version = versions[run_id]
                try:
                    if sqlite:
                        cursor.execute("BEGIN IMMEDIATE")
                    cursor.execute(update, [db_value(v) for v in (
                        target, version + 1, now, *params(now), run_id, source, version)])
                    if cursor.rowcount != 1:
                        raise RuntimeError("compare-and-set lost on an uncontended run")
                    cursor.execute(insert, [db_value(v) for v in (
                        run_id, source, target, now, "bench", "", attempt)])
                    raw.commit() if not sqlite else cursor.execute("COMMIT")
                except Exception as error:  # counted and reported, never hidden
                    errors[classify(error)] += 1
                    raw.rollback() if not sqlite else cursor.execute("ROLLBACK")
                    raise
                versions[run_id] = version + 1
                moves += 1
    return moves, errors


def lease_executor(name: str, stop_at: float, limit: int) -> tuple[int, Counter]:
    from runs import services

    errors: Counter = Counter()
    leased = 0
    while time.monotonic() < stop_at:
        try:
            batch = services.lease(executor=name, limit=limit, lease_seconds=3600)
        except Exception as error:  # counted and reported, never hidden
            errors[classify(error)] += 1
            continue
        if not batch:
            break
        leased += len(batch)
    return leased, errors


def _worker(kind: str, args: tuple, start: mp.Event, ready: mp.Barrier, out: mp.Queue,
            duration: float) -> None:
    from django.db import connection

    if kind == "orm":
        # The core alone: no `run_changed` subscriber in this (forked) process. "orm+subscribers"
        # keeps whatever the installed apps connected (the dashboard's broadcast), as deployed.
        from runs.events import run_changed

        run_changed.receivers = []
        run_changed.sender_receivers_cache.clear()
    connection.ensure_connection()
    ready.wait()
    start.wait()
    stop_at = time.monotonic() + duration
    work = {"orm": orm_writer, "orm+subscribers": orm_writer, "raw": raw_writer,
            "lease": lease_executor}[kind]
    try:
        out.put(work(*args, stop_at) if kind != "lease" else work(args[0], stop_at, args[1]))
    except Exception as error:
        out.put((0, Counter({classify(error): 1})))
    finally:
        connection.close()


def measure(kind: str, per_worker_args: list[tuple], duration: float) -> tuple[float, Counter]:
    """Run one process per worker, all starting together; return (operations/s, errors)."""
    from django.db import connections

    connections.close_all()  # never share a connection across fork
    context = mp.get_context("fork")
    start, out = context.Event(), context.Queue()
    ready = context.Barrier(len(per_worker_args) + 1)
    processes = [context.Process(target=_worker, args=(kind, args, start, ready, out, duration))
                 for args in per_worker_args]
    for process in processes:
        process.start()
    ready.wait()
    began = time.monotonic()
    start.set()
    results = [out.get(timeout=duration + 600) for _ in processes]
    elapsed = time.monotonic() - began
    for process in processes:
        process.join()
    errors: Counter = Counter()
    for _, worker_errors in results:
        errors.update(worker_errors)
    return sum(count for count, _ in results) / elapsed, errors


# -- the report ---------------------------------------------------------------------------------


def transitions_report(writer_counts: list[int], duration: float, repeat: int) -> bool:
    """transition_to (core alone, then with the installed subscribers) beside raw SQL."""
    from runs.events import run_changed

    subscribers = len(run_changed.receivers)
    ok = True
    print(f"{'writers':>7} {'raw SQL':>9} {'transition_to':>14} {'ratio':>6} "
          f"{f'+ {subscribers} subscriber(s)':>22} {'ratio':>6}  errors")
    for writers in writer_counts:
        rates: dict[str, list[float]] = {"raw": [], "orm": [], "orm+subscribers": []}
        errors: Counter = Counter()
        for _ in range(repeat):  # interleaved, so that drift hits every side alike
            for kind, kind_rates in rates.items():
                ids = [make_runs(2) for _ in range(writers)]
                rate, errs = measure(kind, [(chunk,) for chunk in ids], duration)
                kind_rates.append(rate)
                errors.update(errs)
        raw = rates["raw"]
        # The median of paired ratios: each pair ran back to back, under the same load.
        core, deployed = (statistics.median(o / r for o, r in zip(rates[kind], raw, strict=True))
                          for kind in ("orm", "orm+subscribers"))
        print(f"{writers:>7} {statistics.median(raw):>9,.0f} "
              f"{statistics.median(rates['orm']):>14,.0f} {core:>6.0%} "
              f"{statistics.median(rates['orm+subscribers']):>22,.0f} "
              f"{deployed:>6.0%}  {dict(errors) or 'none'}", flush=True)
        ok = ok and not errors
    return ok


def lease_report(executors: int, runs: int, duration: float, limits: list[int]) -> bool:
    """Lease from one pool of `runs` ready runs, one window per `limit`; no run leased twice."""
    from django.db import connection
    from django.db.models import Count

    from runs.models import Run, Transition

    Run.objects.filter(state="ready").delete()
    started = time.monotonic()
    make_runs(runs)
    print(f"\nservices.lease, {executors} executor processes, {runs:,} ready runs "
          f"(created in {time.monotonic() - started:.1f}s) [{connection.vendor}]", flush=True)
    ok = True
    for limit in limits:
        rate, errors = measure("lease", [(f"exec-{i}", limit) for i in range(executors)],
                               duration)
        print(f"  limit={limit:<3} {rate:>8,.0f} runs leased/s   errors: {dict(errors) or 'none'}",
              flush=True)
        ok = ok and not errors
    twice = (Transition.objects.filter(to_state="leased").values("run")
             .annotate(n=Count("id")).filter(n__gt=1).count())
    leased = Run.objects.filter(state="leased").count()
    print(f"  {leased:,} runs leased in all, leased twice: {twice}", flush=True)
    return ok and twice == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writers", default="1,4,16", help="writer counts (default 1,4,16)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved repeats (median)")
    parser.add_argument("--lease-runs", type=int, default=100_000)
    parser.add_argument("--lease-executors", type=int, default=8)
    parser.add_argument("--lease-limits", default="1,10", help="runs per lease call")
    parser.add_argument("--no-sqlite", action="store_true",
                        help="skip the SQLite (WAL) writers check after a PostgreSQL run")
    options = parser.parse_args()

    url, vendor = bench_database_url(os.environ.get("DATABASE_URL"))
    try:
        setup_django(url)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        print(f"== {vendor}: transitions/s, one process per writer ==", flush=True)
        ok = transitions_report([int(n) for n in options.writers.split(",")],
                                options.duration, options.repeat)
        if options.lease_runs:
            limits = [int(n) for n in options.lease_limits.split(",")]
            ok = lease_report(options.lease_executors, options.lease_runs, options.duration * 2,
                              limits) and ok
    finally:
        from django.db import connections

        connections.close_all()
        drop_bench_database(url, vendor)
    if vendor == "postgresql" and not options.no_sqlite:
        # SQLite in a child process (Django is configured once per process): 4 writers.
        import subprocess

        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
        print("\n== sqlite (WAL): 4 writers must never see 'database is locked' ==", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--writers", "1,4", "--repeat", "1",
             "--duration", str(options.duration), "--lease-runs", "10000"], env=env, check=False)
        ok = ok and child.returncode == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
