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

Each measurement runs without and then with a board open (`--board off|on|both`, default
both): a `manage.py serve` process on the same database and one logged-in websocket watching
the whole board, counting the frames and run changes it receives. Runboard's runs are on that
board, so its server reads the change log and sends deltas while the workers write;
django-tasks-db's tasks are not runs, so for it the open board only idles beside the workers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

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
    from django.db import connection
    from django_tasks_db.models import DBTaskResult

    from runs.models import Change, Run, Transition

    Run.objects.all().delete()
    DBTaskResult.objects.all().delete()
    # This machine's PostgreSQL runs with autovacuum off: without a VACUUM each phase would
    # start on the dead rows of the ones before it, whichever system it measures.
    with connection.cursor() as cursor:
        for model in (Run, Transition, Change, DBTaskResult):
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


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


def finished(system: str) -> int:
    """How many tasks finished: one indexed count, so polling it barely loads the database
    the workers are measured on (`times` reads every task's audit trail)."""
    from django_tasks_db.models import DBTaskResult

    from runs.models import Run
    from runs.states import RunState

    if system == "runboard":
        return Run.objects.filter(state=RunState.COMPLETED).count()
    return DBTaskResult.objects.filter(status="SUCCESSFUL").count()


def wait_done(system: str, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while (done := finished(system)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{system}: only {done}/{count} finished")
        time.sleep(0.2)


class OpenBoard:
    """A `manage.py serve` child and one logged-in websocket on its board, counting frames."""

    def __init__(self) -> None:
        from django.contrib.auth.models import User
        from django.test import Client
        from websockets.sync.client import connect

        self.server = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "serve", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.server.stdout is not None
        for line in self.server.stdout:
            if line.startswith("Runboard serving on"):
                base = line.split()[-1].rstrip("/")
                break
        else:
            raise SystemExit("the board's server did not start")
        threading.Thread(target=self.server.stdout.read, daemon=True).start()  # keep draining
        watcher, _ = User.objects.get_or_create(username="bench-watcher")
        browser = Client()
        browser.force_login(watcher)
        cookie = f"sessionid={browser.cookies['sessionid'].value}"
        self.socket = connect(f"{base.replace('http://', 'ws://')}/ws/board/",
                              additional_headers={"Cookie": cookie, "Origin": base})
        first = json.loads(self.socket.recv(timeout=30))
        assert first["type"] == "snapshot", first
        self.frames = 0
        self.changes = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for message in self.socket:
                frame = json.loads(message)
                self.frames += 1
                self.changes += len(frame.get("deltas", ()))
        except ConnectionClosed:
            pass

    def counted(self) -> tuple[int, int]:
        """(frames, run changes) received so far, and start counting again."""
        seen = self.frames, self.changes
        self.frames = self.changes = 0
        return seen

    def close(self) -> None:
        self.socket.close()
        self.server.terminate()
        self.server.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(system: str, processes: int, tasks: int, latency_seconds: float,
            board: OpenBoard | None = None) -> dict[str, Any]:
    clear()
    if board is not None:
        board.counted()
    enqueue(system, tasks)
    workers = [subprocess.Popen(worker_command(system), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(processes)]
    server_cpu = cpu_seconds(board.server.pid) if board is not None else 0.0
    try:
        wait_done(system, tasks)
        if board is not None:
            server_cpu = cpu_seconds(board.server.pid) - server_cpu
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
    frames, changes = board.counted() if board is not None else (0, 0)
    return {"tasks_per_s": throughput, "p50_ms": p50, "p99_ms": p99, "frames": frames,
            "server_ms_per_task": server_cpu * 1000 / tasks,
            "changes": changes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--latency-seconds", type=float, default=5)
    parser.add_argument("--board", choices=("off", "on", "both"), default="both",
                        help="measure without, with, or both without and with a board open")
    parser.add_argument("--processes", default="1,4", help="worker processes, e.g. 1,4")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each pair this many times, alternating who goes first; "
                             "the ratio is of the medians")
    options = parser.parse_args()
    boards = {"off": [False], "on": [True], "both": [False, True]}[options.board]
    recreate_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    board = OpenBoard() if any(boards) else None
    try:
        for processes in (int(p) for p in options.processes.split(",")):
            for open_board in boards:
                label = "board open" if open_board else "no board"
                rates: dict[str, list[float]] = {"runboard": [], "django-tasks-db": []}
                for repeat in range(options.repeat):
                    # Alternate who goes first: a phase can leave the machine warmer or busier.
                    order = ["runboard", "django-tasks-db"][::1 if repeat % 2 == 0 else -1]
                    for system in order:
                        row = measure(system, processes, options.tasks,
                                      options.latency_seconds, board if open_board else None)
                        rates[system].append(row["tasks_per_s"])
                        seen = (f"  board got {row['frames']} frames, {row['changes']} "
                                f"changes, its server {row['server_ms_per_task']:.2f} ms "
                                f"CPU/task" if open_board else "")
                        print(f"{system:16} {processes} proc, {label:10}: "
                              f"{row['tasks_per_s']:7.0f} tasks/s  enqueue→start p50 "
                              f"{row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms{seen}",
                              flush=True)
                ratios = [ours / theirs for ours, theirs in
                          zip(rates["runboard"], rates["django-tasks-db"], strict=True)]
                ratio = (statistics.median(rates["runboard"])
                         / statistics.median(rates["django-tasks-db"]))
                print(f"  runboard / django-tasks-db at {processes} process(es), {label}: "
                      f"{ratio:.2f}x (medians of {options.repeat}; pairs "
                      f"{', '.join(f'{ratio:.2f}' for ratio in ratios)})", flush=True)
    finally:
        if board is not None:
            board.close()
        drop_database()


if __name__ == "__main__":
    main()
