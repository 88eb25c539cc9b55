"""Transition throughput: `Run.transition_to` beside the same SQL by hand, and `services.lease`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/runboard \
        .venv/bin/python benchmarks/transitions.py     # PostgreSQL, then SQLite (WAL)
    .venv/bin/python benchmarks/transitions.py         # SQLite (WAL) in a temp file

It never touches the configured database itself: on PostgreSQL it creates (and afterwards
drops) a `runboard_bench_transitions` database on the same server, on SQLite it uses a
temporary file.

What it measures, each writer a separate process working on its own runs (so there is no
contention by design, only the cost of a write), at 1, 4 and 16 writers, every run cycling
ready → leased → running → suspended → ready (four different moves):
- **raw**: the compare-and-set UPDATE plus the audit INSERT written by hand on the DB-API
  connection (BEGIN; UPDATE … WHERE id AND state AND version; INSERT; COMMIT): the baseline;
- **raw + log**: the same with the change-log INSERT by hand as a third statement, so
  raw + log ÷ raw is what the log row itself costs at the database;
- **transition_to**: the full write path (guards, field effects, CAS + audit + log row in one
  statement on PostgreSQL, the after-commit hint) with hints in-process only (no `REDIS_URL`);
- **+ Redis**: the same with `REDIS_URL` set, so each writer process's hint thread PUBLISHes
  to a real Redis (on a private `HINT_CHANNEL`; the driver subscribes and counts the hints);
- ratios are medians of back-to-back pairs (absolute numbers drift 30 to 40 % within an hour
  here; ratios don't);
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
BENCH_DATABASE = "runboard_bench_transitions"  # its own: benchmarks may run side by side
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Set by main() before the writers fork: where the "+ Redis" writers publish their hints.
REDIS_URL = ""
HINT_CHANNEL = f"runboard-bench-hints-{os.getpid()}"
GOALS = {1: 0.75, 4: 0.70, 16: 0.60}  # transition_to ÷ raw CAS + audit (issue 8)


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
    # Writers are forked children, each holding one connection for its whole run: a pool
    # (the servers' default) would be shared across fork and hang; none is needed here.
    os.environ["DB_POOL_MAX_SIZE"] = "0"
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


def raw_writer(run_ids: list[uuid.UUID], stop_at: float, *, with_log: bool = False
               ) -> tuple[int, Counter]:
    """The same four moves as compare-and-set UPDATE + audit INSERT (+ the change-log INSERT
    when `with_log`) on the DB-API connection, one transaction per move."""
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
    # The log row as the write path fills it; on PostgreSQL its txid comes from the column's
    # default (pg_current_xact_id()), exactly as in `runs.writes`.
    log_insert = prepare("INSERT INTO runs_change (run_id, version, kind, from_state, to_state, "
                         "queue, name, at, actor, reason) "
                         "VALUES (%s, %s, 'transition', %s, %s, %s, %s, %s, %s, %s)")
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
                    if with_log:
                        cursor.execute(log_insert, [db_value(v) for v in (
                            run_id, version + 1, source, target, "default", "bench", now,
                            "bench", "")])
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
    from django.conf import settings
    from django.db import connection

    # Settings are read at each hint, so a forked writer can choose its own: in-process hints
    # only (nobody listens in a writer process), or a PUBLISH to Redis after every commit.
    settings.REDIS_URL = REDIS_URL if kind == "orm+redis" else ""
    settings.RUNBOARD["HINT_CHANNEL"] = HINT_CHANNEL
    connection.ensure_connection()
    ready.wait()
    start.wait()
    stop_at = time.monotonic() + duration
    try:
        if kind == "lease":
            result = lease_executor(args[0], stop_at, args[1])
        elif kind.startswith("raw"):
            result = raw_writer(*args, stop_at, with_log=kind == "raw+log")
        else:
            result = orm_writer(*args, stop_at)
        out.put(result)
    except Exception as error:
        out.put((0, Counter({classify(error): 1})))
    finally:
        connection.close()
        if kind == "orm+redis":
            from runs.changelog import hints

            hints._publisher().flush()  # the last commit's hint, before the process ends


def measure(kind: str, per_worker_args: list[tuple], duration: float
            ) -> tuple[float, Counter, int]:
    """Run one process per worker, all starting together; (operations/s, errors, operations)."""
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
    done = sum(count for count, _ in results)
    return done / elapsed, errors, done


# -- the report ---------------------------------------------------------------------------------


class HintCounter:
    """Counts the hints published on the private channel (proof the "+ Redis" writers paid
    for a real PUBLISH), on a thread of the driver that never forks with a writer mid-call."""

    def __init__(self, url: str):
        import redis

        self.count = 0
        self.pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(**{HINT_CHANNEL: self._count})
        self.thread = self.pubsub.run_in_thread(sleep_time=0.2, daemon=True)

    def _count(self, message: dict) -> None:
        self.count += 1

    def stop(self) -> None:
        self.thread.stop()
        self.thread.join(timeout=2)


def _ratios(rates: dict[str, list[float]], kind: str) -> list[float]:
    # Each pair ran back to back, under the same load.
    return [other / base for other, base in zip(rates[kind], rates["raw"], strict=True)]


def _cell(rates: dict[str, list[float]], kind: str) -> str:
    """Median tps, median ratio to raw and (lowest to highest) ratio, or dashes."""
    if kind not in rates:
        return f"{'-':>8} {'-':>16}"
    values = _ratios(rates, kind)
    spread = f"({min(values):.0%} to {max(values):.0%})"
    return (f"{statistics.median(rates[kind]):>8,.0f} "
            f"{statistics.median(values):>5.0%} {spread:>14}")


def transitions_report(writer_counts: list[int], duration: float, repeat: int) -> bool:
    """raw CAS + audit, raw + log row, transition_to, transition_to + Redis hints."""
    from django.db import connection

    vendor = connection.vendor
    kinds = ["raw", "raw+log", "orm"] + (["orm+redis"] if REDIS_URL else [])
    counter = HintCounter(REDIS_URL) if REDIS_URL else None
    ok = True
    print(f"{'writers':>7} {'raw tps':>8} {'raw+log':>8} {'log cost':>8} "
          f"{'transition_to':>13} {'ratio (range)':>20} {'+ Redis':>8} {'ratio (range)':>20} "
          f"{'goal':>5}  hints  errors")
    try:
        for writers in writer_counts:
            rates: dict[str, list[float]] = {kind: [] for kind in kinds}
            errors: Counter = Counter()
            hints = moves = 0
            for _ in range(repeat):  # interleaved, so that drift hits every side alike
                for kind in kinds:
                    ids = [make_runs(2) for _ in range(writers)]
                    before = counter.count if counter else 0
                    rate, errs, done = measure(kind, [(chunk,) for chunk in ids], duration)
                    if kind == "orm+redis" and counter:
                        time.sleep(0.3)  # the last hints are in flight
                        hints += counter.count - before
                        moves += done
                    rates[kind].append(rate)
                    errors.update(errs)
            raw = rates["raw"]

            log_cost = statistics.median(_ratios(rates, "raw+log"))
            goal = GOALS.get(writers) if vendor == "postgresql" else None  # SQLite: no goal
            met = goal is None or all(statistics.median(_ratios(rates, kind)) >= goal
                                      for kind in ("orm", "orm+redis") if kind in rates)
            hint_cell = f"{hints:,}/{moves:,}" if counter else "-"
            print(f"{writers:>7} {statistics.median(raw):>8,.0f} "
                  f"{statistics.median(rates['raw+log']):>8,.0f} {log_cost:>8.0%} "
                  f"{_cell(rates, 'orm'):>30} {_cell(rates, 'orm+redis'):>25} "
                  f"{f'{goal:.0%}' if goal else '-':>5}{'' if met else '!'}  {hint_cell}  "
                  f"{dict(errors) or 'none'}", flush=True)
            ok = ok and not errors
    finally:
        if counter:
            counter.stop()
    print("(log cost: raw + log ÷ raw; ratios: ÷ raw CAS + audit, median of back-to-back "
          "pairs, (min to max); hints: PUBLISHes heard / moves committed; ! marks a missed goal)")
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
        rate, errors, _ = measure("lease", [(f"exec-{i}", limit) for i in range(executors)],
                               duration)
        print(f"  limit={limit:<3} {rate:>8,.0f} runs leased/s   errors: {dict(errors) or 'none'}",
              flush=True)
        ok = ok and not errors
    twice = (Transition.objects.filter(to_state="leased").values("run")
             .annotate(n=Count("id")).filter(n__gt=1).count())
    leased = Run.objects.filter(state="leased").count()
    print(f"  {leased:,} runs leased in all, leased twice: {twice}", flush=True)
    return ok and twice == 0


def redis_reachable(url: str) -> str:
    """`url` when Redis answers there, else "" (and the '+ Redis' column is skipped)."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1.0).ping()
    except Exception as error:  # any failure: measure without it, and say so
        print(f"Redis at {url} unreachable ({error!r}): no '+ Redis' column", flush=True)
        return ""
    return url


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
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
                        help="Redis for the '+ Redis' writers' hints (default: REDIS_URL or "
                             f"{DEFAULT_REDIS_URL})")
    parser.add_argument("--no-redis", action="store_true", help="skip the '+ Redis' writers")
    options = parser.parse_args()
    global REDIS_URL
    REDIS_URL = "" if options.no_redis else redis_reachable(options.redis_url)

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
             "--duration", str(options.duration), "--lease-runs", "10000",
             *(["--redis-url", REDIS_URL] if REDIS_URL else ["--no-redis"])],
            env=env, check=False)
        ok = ok and child.returncode == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
