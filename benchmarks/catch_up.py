"""Catch-up benchmark: a hub whose log watermark was held back while 100,000 changes committed
reaches the head — how long it takes, and that no watcher needs a second snapshot.

    .venv/bin/python benchmarks/catch_up.py --changes 100000 --runs 2000 --watchers 100

On PostgreSQL (DATABASE_URL's server; the database `runboard_bench_catchup` is created and
dropped) it:
1. creates `--runs` ready runs (queue `catchup`) and a logged-in session;
2. opens a transaction that takes an xid and stays open: readers of the change log stop at the
   oldest running transaction, so from here on every hub is held back;
3. commits `--changes` moves from another connection, `--changes / --runs` rounds, each round
   one transaction moving every run one step of ready → leased → running → suspended → ready
   with the write path's own statement shape (`runs.writes.write_move`: one data-modifying CTE,
   UPDATE … RETURNING feeding the audit INSERT and the change-log INSERT), in bulk;
4. starts `manage.py serve` and connects `--watchers` board watchers in client processes: each
   gets its snapshot (the runs table already shows every change) while the backlog is pending;
5. ends the long transaction and measures, per watcher, the time until it holds a frame whose
   position is the log's head (the last backlog row), the first frame's time (the hub learns of
   the release at its next poll: no write hints it), server CPU meanwhile, how many snapshots
   each watcher received (the goal: one, the first), and lost final states (a run whose last
   version in a watcher's frames is not the database's).

The goal (issue 8): at the head within 3 s of the release, with no snapshot per watcher.
`CATCHUP_PYSPY=<file>.svg` records the server with py-spy during the catch-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fanout import Server  # noqa: E402  (after the path is set)

DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DATABASE = "runboard_bench_catchup"
QUEUE = "catchup"
REACH_TIMEOUT = 120.0

# The four moves of a cycle, as the lifecycle's effects set them (runs.lifecycle): (from, to,
# SET clause). Every round moves all runs one step, so they are all in one state at a time.
MOVES = (
    ("ready", "leased", "lease_owner = 'bench', lease_expires_at = now() + interval '1 hour'"),
    ("leased", "running", "attempts = attempts + 1, started_at = now(), heartbeat_at = now(), "
     "progress = NULL"),
    ("running", "suspended", "attempts = attempts - 1, suspend_reason = 'catch-up bench', "
     "suspended_by = 'operator', lease_owner = '', lease_expires_at = NULL"),
    ("suspended", "ready", "suspend_reason = '', suspended_by = '', next_attempt_at = NULL"),
)


def database_urls() -> tuple[str, str]:
    """(the maintenance database's url, the benchmark database's url)."""
    parsed = urlparse(os.environ.get("DATABASE_URL", DEFAULT_SERVER_URL))
    return (urlunparse(parsed._replace(path="/postgres")),
            urlunparse(parsed._replace(path=f"/{DATABASE}")))


def recreate_database(admin_url: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1),
                         autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {DATABASE}")


def prepare(run_count: int) -> str:
    """Migrate, create the runs and a logged-in session; the session cookie."""
    import django

    django.setup()
    from datetime import UTC, datetime, timedelta

    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from runs.models import Run

    call_command("migrate", verbosity=0)
    now = datetime.now(UTC)
    Run.objects.bulk_create(
        [Run(name=f"catchup-{i % 10}", queue=QUEUE, state="ready", max_attempts=10**6,
             created_at=now, scheduled_at=now, state_changed_at=now + timedelta(microseconds=i))
         for i in range(run_count)], batch_size=5000)
    user, _ = User.objects.get_or_create(username="bench-watcher")
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def commit_backlog(changes: int, run_count: int) -> tuple[int, float]:
    """Commit `changes` moves (one round of every run per transaction); (rows, seconds)."""
    from django.db import connection, transaction

    rows, started = 0, time.monotonic()
    for round_number in range(changes // run_count):
        source, target, assignments = MOVES[round_number % len(MOVES)]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "WITH moved AS (UPDATE runs_run SET state = %s, version = version + 1, "
                f"state_changed_at = now(), {assignments} WHERE queue = %s AND state = %s "
                "RETURNING id, version, attempts, queue, name), "
                "audited AS (INSERT INTO runs_transition (run_id, from_state, to_state, at, "
                "actor, reason, attempt) SELECT id, %s, %s, now(), 'bench', '', attempts "
                "FROM moved) "
                "INSERT INTO runs_change (run_id, version, kind, from_state, to_state, queue, "
                "name, at, actor, reason) SELECT id, version, 'transition', %s, %s, queue, "
                "name, now(), 'bench', '' FROM moved",
                [target, QUEUE, source, source, target, source, target])
            rows += cursor.rowcount
    return rows, time.monotonic() - started


def final_versions() -> dict[str, int]:
    from runs.models import Run

    return {str(pk): version for pk, version in
            Run.objects.filter(queue=QUEUE).values_list("pk", "version")}


def parse_position(token: str) -> tuple[int, int]:
    txid, _, change_id = token.partition(".")
    return int(txid), int(change_id)


# -- watchers (client processes) -----------------------------------------------------------------


SNAPSHOT_PREFIX = '{"type":"snapshot"'
POSITION_PREFIX = '{"type":"deltas","position":"'  # the last part of a frame (hub.delta_frames)


async def watch(url: str, headers: list[tuple[str, str]], record: dict[str, Any],
                ready: asyncio.Event, checked: bool) -> None:
    """One watcher. Only `checked` ones parse every frame (for lost final states): parsing
    100 watchers' 1.7 MB frames in two client processes on two shared cores would measure the
    clients, not the server. The others read the frame's type and position from its prefix."""
    from websockets.asyncio.client import connect

    async with connect(url, additional_headers=headers, max_size=None, compression=None,
                       ping_interval=None, open_timeout=60) as ws:
        async for text in ws:
            now = time.time()
            if text.startswith(SNAPSHOT_PREFIX):
                record["snapshots"] += 1
                ready.set()
                continue
            record["parts"] += 1
            if text.startswith(POSITION_PREFIX):
                end = text.index('"', len(POSITION_PREFIX))
                record["frames"].append((now, text[len(POSITION_PREFIX):end]))
            if checked:
                for event in json.loads(text).get("deltas", ()):
                    if event["version"] > record["final"].get(event["id"], 0):
                        record["final"][event["id"]] = event["version"]


def client_process(conn: Any, url: str, headers: list[tuple[str, str]], count: int,
                   checked: int) -> None:
    asyncio.run(_client(conn, url, headers, count, checked))


async def _client(conn: Any, url: str, headers: list[tuple[str, str]], count: int,
                  checked: int) -> None:
    records = [{"snapshots": 0, "frames": [], "parts": 0, "final": {}, "checked": i < checked}
               for i in range(count)]
    tasks = []
    for record in records:
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(
            watch(url, headers, record, ready, record["checked"])))
        await asyncio.wait_for(ready.wait(), 60)
    conn.send("ready")
    target = parse_position(await asyncio.to_thread(conn.recv))

    def reached(record: dict[str, Any]) -> bool:
        return bool(record["frames"]) and parse_position(record["frames"][-1][1]) >= target

    deadline = time.monotonic() + REACH_TIMEOUT
    while not all(reached(r) for r in records) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)  # a late extra snapshot would show up now
    for task in tasks:
        task.cancel()
    summary = []
    for record in records:
        at_head = [at for at, token in record["frames"] if parse_position(token) >= target]
        summary.append({"snapshots": record["snapshots"], "frames": len(record["frames"]),
                        "parts": record["parts"],
                        "first_frame": record["frames"][0][0] if record["frames"] else None,
                        "at_head": at_head[0] if at_head else None, "final": record["final"],
                        "checked": record["checked"]})
    conn.send(summary)


# -- the measurement -----------------------------------------------------------------------------


async def measure(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    import psycopg

    cookie = await asyncio.to_thread(prepare, args.runs)
    # The long transaction: it takes an xid, so the log's watermark stays below it.
    holder = psycopg.connect(env["DATABASE_URL"].replace("postgres://", "postgresql://", 1))
    held_xid = holder.execute("SELECT pg_current_xact_id()::text").fetchone()[0]
    rows, write_seconds = await asyncio.to_thread(commit_backlog, args.changes, args.runs)
    print(f"holding xid {held_xid}; committed {rows:,} change-log rows in "
          f"{write_seconds:.1f} s", flush=True)
    server = Server(env)
    base = f"127.0.0.1:{server.port}"
    headers = [("Cookie", f"sessionid={cookie}"), ("Origin", f"http://{base}")]
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    try:
        for index in range(args.client_processes):
            share = (args.watchers // args.client_processes
                     + (1 if index < args.watchers % args.client_processes else 0))
            parent, child = context.Pipe()
            process = context.Process(
                target=client_process, daemon=True,
                args=(child, f"ws://{base}/ws/board/", headers, share,
                      args.checked // args.client_processes))
            process.start()
            pipes.append(parent)
            processes.append(process)
        for pipe in pipes:
            assert await asyncio.to_thread(pipe.recv) == "ready"
        await asyncio.sleep(1.0)  # the hub's idle polls meanwhile, as a running server's
        if os.environ.get("CATCHUP_PYSPY"):  # a py-spy flame graph of the server's catch-up
            server.profile(os.environ["CATCHUP_PYSPY"])
        cpu_before = server.cpu()
        holder.rollback()  # the watermark moves past the whole backlog at once
        released = time.time()
        holder.close()
        head = await asyncio.to_thread(log_head)
        for pipe in pipes:
            pipe.send(head)
        summaries = []
        for pipe in pipes:
            summaries += await asyncio.to_thread(pipe.recv)
        cpu = server.cpu() - cpu_before
    finally:
        server.stop()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    expected = await asyncio.to_thread(final_versions)
    reach = [s["at_head"] - released for s in summaries if s["at_head"] is not None]
    first = [s["first_frame"] - released for s in summaries if s["first_frame"] is not None]
    checked = [s for s in summaries if s["checked"]]
    lost = sum(1 for s in checked for run_id, version in expected.items()
               if s["final"].get(run_id, 0) != version)
    return {
        "rows": rows, "head": head, "watchers": len(summaries),
        "reached": len(reach), "reach_max_s": max(reach, default=float("nan")),
        "reach_median_s": statistics.median(reach) if reach else float("nan"),
        "first_frame_median_s": statistics.median(first) if first else float("nan"),
        "frames_median": statistics.median(s["frames"] for s in summaries),
        "parts_median": statistics.median(s["parts"] for s in summaries),
        "snapshots_max": max(s["snapshots"] for s in summaries),
        "extra_snapshots": sum(s["snapshots"] - 1 for s in summaries),
        "lost_final_states": lost, "final_states": len(expected) * len(checked),
        "server_cpu_s": cpu,
    }


def log_head() -> str:
    from runs.changelog.reader import head

    return head().token()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2_000,
                        help="runs the changes are spread over (changes / runs rounds)")
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--checked", type=int, default=10,
                        help="watchers that parse every frame and check final states")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    admin_url, url = database_urls()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings", "DATABASE_URL": url,
           "SECRET_KEY": os.environ.get("SECRET_KEY", "benchmark-only-secret"),
           "SECURE_COOKIES": "0", "PYTHONPATH": str(ROOT),
           "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING")}
    env.pop("REDIS_URL", None)  # nothing hints the release: the hub finds it at its next poll
    os.environ.update(env)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()}: "
          f"{args.changes:,} changes over {args.runs:,} runs, {args.watchers} watchers, "
          "one `serve` on PostgreSQL", flush=True)
    ok = True
    try:
        for _ in range(args.repeat):
            recreate_database(admin_url)
            from django.db import connections

            result = asyncio.run(measure(args, env))
            connections.close_all()
            print(json.dumps(result), flush=True)
            print(f"at the head {result['reach_median_s']:.2f} s (median watcher), "
                  f"{result['reach_max_s']:.2f} s (last of {result['reached']}/"
                  f"{result['watchers']}) after the release; first frame "
                  f"{result['first_frame_median_s']:.2f} s; {result['frames_median']:.0f} "
                  f"frames ({result['parts_median']:.0f} messages) per watcher; extra snapshots "
                  f"{result['extra_snapshots']}; lost "
                  f"{result['lost_final_states']} of {result['final_states']:,} final states; "
                  f"server CPU {result['server_cpu_s']:.2f} s", flush=True)
            ok = ok and result["extra_snapshots"] == 0 and result["lost_final_states"] == 0
    finally:
        from django.db import connections

        connections.close_all()
        recreate_database(admin_url, drop_only=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
