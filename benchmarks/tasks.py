"""No-op task throughput and enqueue → start latency: Runboard's worker beside django-tasks-db.

    .venv/bin/pip install 'django-tasks-db==0.13.*'          # the peer (not a dependency)
    .venv/bin/python benchmarks/tasks.py [--tasks 3000] [--latency-seconds 5]

On the PostgreSQL server at 127.0.0.1:5432 it creates (and afterwards drops) a
`runboard_bench_tasks` database. For each system and 1 and 4 worker processes (one task at a
time each, idle poll 0.05 s for both):
- throughput: a backlog of N no-op tasks is enqueued, the workers start, and tasks/s is N over
  the time from the first start to the last finish, read from the tasks' own timestamps (so
  process start-up is not counted);
- latency: with the workers idle and polling, tasks are enqueued at 50/s for a few seconds;
  p50 / p99 of (started_at - enqueued_at).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "runboard_bench_tasks"
SERVER = "postgres://postgres@127.0.0.1:5432"
sys.path.insert(0, str(ROOT))
os.environ.update(DATABASE_URL=f"{SERVER}/{DB_NAME}",
                  DJANGO_SETTINGS_MODULE="benchmarks.taskbench.settings",
                  SECRET_KEY="benchmark-only")


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DB_NAME}"')


def drop_database() -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def worker_command(system: str) -> list[str]:
    manage = [sys.executable, str(ROOT / "manage.py")]
    if system == "runboard":
        return [*manage, "runboard_worker", "--queue", "default", "--no-clock",
                "--poll-interval", "0.05"]
    return [*manage, "db_worker", "--backend", "db", "--interval", "0.05", "--no-startup-delay"]


def clear() -> None:
    from django_tasks_db.models import DBTaskResult

    from runs.models import Run

    Run.objects.all().delete()
    DBTaskResult.objects.all().delete()


def enqueue(system: str, count: int) -> None:
    from benchmarks.taskbench.noops import noop_db, noop_runboard

    task = noop_runboard if system == "runboard" else noop_db
    for _ in range(count):
        task.enqueue()


def times(system: str) -> list[tuple]:
    """(enqueued_at, started_at, finished_at) of every finished task."""
    from django.db.models import OuterRef, Subquery
    from django_tasks_db.models import DBTaskResult

    from runs.models import Run, Transition
    from runs.states import RunState

    if system == "runboard":
        first_start = Transition.objects.filter(run=OuterRef("pk"), to_state=RunState.RUNNING)
        rows = (Run.objects.filter(state=RunState.COMPLETED)
                .annotate(first=Subquery(first_start.order_by("id").values("at")[:1]))
                .values_list("created_at", "first", "finished_at"))
        return list(rows)
    return list(DBTaskResult.objects.filter(status="SUCCESSFUL")
                .values_list("enqueued_at", "started_at", "finished_at"))


def wait_done(system: str, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while len(times(system)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{system}: only {len(times(system))}/{count} finished")
        time.sleep(0.2)


def measure(system: str, processes: int, tasks: int, latency_seconds: float) -> dict:
    clear()
    enqueue(system, tasks)
    workers = [subprocess.Popen(worker_command(system), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(processes)]
    try:
        wait_done(system, tasks)
        rows = times(system)
        span = (max(r[2] for r in rows) - min(r[1] for r in rows)).total_seconds()
        throughput = tasks / span
        clear()
        sent = 0
        started = time.monotonic()
        while time.monotonic() - started < latency_seconds:
            enqueue(system, 1)
            sent += 1
            time.sleep(0.02)
        wait_done(system, sent)
        delays = sorted((r[1] - r[0]).total_seconds() * 1000 for r in times(system))
        p50 = statistics.median(delays)
        p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    return {"tasks_per_s": throughput, "p50_ms": p50, "p99_ms": p99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--latency-seconds", type=float, default=5)
    options = parser.parse_args()
    recreate_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    results = {}
    try:
        for processes in (1, 4):
            for system in ("runboard", "django-tasks-db"):
                results[system, processes] = measure(system, processes, options.tasks,
                                                     options.latency_seconds)
                row = results[system, processes]
                print(f"{system:16} {processes} proc: {row['tasks_per_s']:7.0f} tasks/s  "
                      f"enqueue→start p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms",
                      flush=True)
            ratio = (results["runboard", processes]["tasks_per_s"]
                     / results["django-tasks-db", processes]["tasks_per_s"])
            print(f"  runboard / django-tasks-db at {processes} process(es): {ratio:.2f}x",
                  flush=True)
    finally:
        drop_database()


if __name__ == "__main__":
    main()
