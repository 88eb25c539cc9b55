"""Board fan-out benchmark: commit → frame latency through the change log, with Redis hints and
poll-only, and server CPU per delivery beside a bare ASGI app.

    .venv/bin/python benchmarks/fanout.py --watchers 100 500 --rate 200 --duration 10 --repeat 3

For each watcher count N, and each variant back to back (`--variants hints poll`; `--repeat`
times, medians and ranges at the end), it:
1. starts `manage.py serve` on PostgreSQL (DATABASE_URL, default below; the database
   `runboard_bench_fanout` is created and migrated, its runs wiped) — with `REDIS_URL` set and
   a private `HINT_CHANNEL` for "hints", without `REDIS_URL` for "poll" (the hub then reads the
   log only every `LOG_POLL_INTERVAL`, 1 s: expect p50 near 0.5 s);
2. connects N websocket watchers logged in with a real session, in client processes;
3. drives changes at a fixed rate from another process (`--drive`, same environment as the
   server, so with hints it PUBLISHes after each commit): each run is leased, started,
   heartbeated and completed through `runs.services`, and the driver stamps the time each
   service call returned (just after its commit) with the run's new version;
4. waits until every watcher shows every driven run at its final version in the database (or a
   timeout) and reports: deliveries and frames, commit → frame latency p50/p99 (receipt time
   minus commit time, same machine clock, from a sample of watchers), server CPU µs per delivered
   event and per frame, and lost final states (a watcher whose last version of a run is not
   the database's);
5. with `--bare`, the bare baseline (`benchmarks/bare_fanout.py`): a daphne serving an ASGI app
   with no application code sends the same payload straight to N sockets at the same rate;
   its CPU per delivery is the floor the hub's is read against.

`FANOUT_PYSPY=<file prefix>` records the server with py-spy (flame graph SVG) while it drives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/runboard_bench_fanout"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LATENCY_SAMPLE = 50  # watchers whose every event is timed
EVENTS_PER_RUN = 4  # lease, start, heartbeat, complete
DRIVER_THREADS = 4  # executors driving transitions concurrently
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
HELD_BACK_AFTER = 1.0  # s: a transaction this old in the cluster held the log's readers back


def environment(variant: str = "hints") -> dict[str, str]:
    """The server's and the driver's environment: Redis hints on a private channel, or none."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DATABASE_URL": os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        "REDIS_URL": os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        "HINT_CHANNEL": f"runboard-bench-hints-{os.getpid()}",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "benchmark-only-secret"),
        "SECURE_COOKIES": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    if variant == "poll":
        del env["REDIS_URL"]
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime + stime


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Server:
    """A server child process on a free loopback port: `manage.py serve` (the product), or
    daphne serving `app` (the bare baseline)."""

    def __init__(self, env: dict[str, str], app: str | None = None):
        self.port = free_port()
        if app is None:
            command = [sys.executable, "manage.py", "serve", "--port", str(self.port)]
        else:
            command = [str(Path(sys.executable).with_name("daphne")), "-v", "0", "-b",
                       "127.0.0.1", "-p", str(self.port), app]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env)
        self.profiler: subprocess.Popen | None = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{command} did not start")

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def profile(self, output: str) -> None:
        """Sample the server with py-spy until `stop` (its SVG flame graph is `output`)."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.profiler = subprocess.Popen(
            [spy, "record", "-p", str(self.process.pid), "-o", output, "-r", "200",
             "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.profiler is not None:
            self.profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            self.profiler.wait(timeout=30)
        self.process.send_signal(signal.SIGINT)  # a clean reactor stop
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Watcher:
    timed: bool
    frames: int = 0
    events: int = 0
    final: dict[str, int] = field(default_factory=dict)  # run id -> newest version
    received: dict[tuple[str, int], float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # bare baseline


async def watch(url: str, headers: list[tuple[str, str]], watcher: Watcher,
                ready: asyncio.Event, bare: bool) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, additional_headers=headers, max_size=None, compression=None,
                       ping_interval=None, open_timeout=60) as ws:
        if bare:
            ready.set()
        async for text in ws:
            now = time.time()
            frame = json.loads(text)
            if bare:
                watcher.frames += 1
                watcher.events += 1
                if watcher.timed:
                    watcher.latencies.append(now - frame["sent_at"])
                continue
            if frame["type"] == "snapshot":
                ready.set()
                continue
            if frame["type"] != "deltas":
                continue
            watcher.frames += 1
            watcher.events += len(frame["deltas"])
            for event in frame["deltas"]:
                if event["version"] > watcher.final.get(event["id"], 0):
                    watcher.final[event["id"]] = event["version"]
                if watcher.timed:
                    watcher.received.setdefault((event["id"], event["version"]), now)


async def connect_all(url: str, headers: list[tuple[str, str]], count: int, bare: bool,
                      timed: int) -> tuple[list[Watcher], list[asyncio.Task]]:
    watchers = [Watcher(timed=i < timed) for i in range(count)]
    tasks, gate = [], asyncio.Semaphore(50)
    for watcher in watchers:
        ready = asyncio.Event()
        async with gate:
            tasks.append(asyncio.create_task(watch(url, headers, watcher, ready, bare)))
            await asyncio.wait_for(ready.wait(), 60)
    return watchers, tasks


def client_process(conn: Any, url: str, headers: list[tuple[str, str]], count: int,
                   timed: int, bare: bool) -> None:
    """One client process (spawned): its share of the watchers, so that no single client
    event loop becomes the bottleneck the latency measures."""
    asyncio.run(_client(conn, url, headers, count, timed, bare))


async def _client(conn: Any, url: str, headers: list[tuple[str, str]], count: int,
                  timed: int, bare: bool) -> None:
    watchers, tasks = await connect_all(url, headers, count, bare, timed)
    conn.send("ready")
    order = await asyncio.to_thread(conn.recv)
    expected: dict[str, int] = order.get("expected", {})

    def finished() -> bool:
        if bare:
            return all(w.events >= order["events"] for w in watchers)
        return all(w.final.get(i, 0) >= v for w in watchers for i, v in expected.items())

    deadline = time.monotonic() + 90
    while not finished() and time.monotonic() < deadline:  # poll until all arrived
        await asyncio.sleep(0.05)
    conn.send("done")
    committed = order.get("committed", {})
    if bare:
        latencies = [lat for w in watchers for lat in w.latencies]
        lost = sum(max(0, order["events"] - w.events) for w in watchers)
    else:
        latencies = [at - committed[f"{rid}:{v}"] for w in watchers if w.timed
                     for (rid, v), at in w.received.items() if f"{rid}:{v}" in committed]
        lost = sum(1 for w in watchers for i, v in expected.items() if w.final.get(i, 0) < v)
    conn.send({"latencies": latencies, "lost": lost, "events": sum(w.events for w in watchers),
               "frames": sum(w.frames for w in watchers)})
    for task in tasks:
        task.cancel()


class Clients:
    """`processes` client processes sharing `count` watchers of one server."""

    def __init__(self, url: str, headers: list[tuple[str, str]], count: int, bare: bool,
                 processes: int):
        context = multiprocessing.get_context("spawn")
        self.pipes, self.processes = [], []
        for index in range(processes):
            share = count // processes + (1 if index < count % processes else 0)
            parent, child = context.Pipe()
            process = context.Process(target=client_process, args=(
                child, url, headers, share, LATENCY_SAMPLE // processes, bare), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    async def expect(self, what: str) -> None:
        for pipe in self.pipes:
            answer = await asyncio.to_thread(pipe.recv)
            assert answer == what, answer

    def order(self, message: dict[str, Any]) -> None:
        for pipe in self.pipes:
            pipe.send(message)

    async def results(self) -> dict[str, Any]:
        total: dict[str, Any] = {"latencies": [], "lost": 0, "events": 0, "frames": 0}
        for pipe in self.pipes:
            part = await asyncio.to_thread(pipe.recv)
            total["latencies"] += part["latencies"]
            for key in ("lost", "events", "frames"):
                total[key] += part[key]
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        return total


# -- the driver process ---------------------------------------------------------------------


def drive(rate: float, run_count: int, out: Path) -> None:
    """Move `run_count` ready runs through lease → start → heartbeat → complete at `rate`
    changes per second, recording when each change committed."""
    import django

    django.setup()
    from django.db import connection

    from runs import services

    committed: dict[str, float] = {}

    def stamp(run: Any) -> None:
        # A service returns after its transaction committed (and its hint was requested): the
        # time now is the commit time plus a few microseconds.
        committed[f"{run.pk}:{run.version}"] = time.time()

    threads = DRIVER_THREADS
    started = time.monotonic()

    def worker(share: int) -> None:
        """One executor: its share of the runs at its share of the rate, on a fixed clock."""
        done, group = 0, 5

        def pace() -> None:
            nonlocal done
            delay = started + done / (rate / threads) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            done += 1

        for _ in range(0, share, group):
            batch = []
            for _ in range(group):
                pace()
                leased = services.lease(executor="bench", limit=1)
                for run in leased:
                    stamp(run)
                batch.extend(leased)
            for run in batch:
                pace()
                stamp(services.start(run.pk, executor="bench"))
            for run in batch:
                pace()
                stamp(services.heartbeat(run.pk, executor="bench", progress=50,
                                         consumed={"tokens": 10}))
            for run in batch:
                pace()
                stamp(services.complete(run.pk, executor="bench", result={"ok": True}))
        connection.close()

    pool = [threading.Thread(target=worker, args=(run_count // threads,)) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    out.write_text(json.dumps({"committed": committed, "elapsed": elapsed}))


# -- one measurement --------------------------------------------------------------------------


class OldestTransaction:
    """Samples the age of the oldest transaction holding an xid anywhere in the cluster while
    a measurement runs. Hubs read the log only below the oldest running transaction, in any
    database of the server: someone else's minute-long bulk load on a shared PostgreSQL holds
    every board back that long, and a measurement it overlapped is flagged, not trusted."""

    def __init__(self, url: str):
        self.url = url.replace("postgres://", "postgresql://", 1)
        self.oldest = 0.0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopped.wait(0.25):
                age = conn.execute(
                    "SELECT COALESCE(EXTRACT(EPOCH FROM max(now() - xact_start)), 0) "
                    "FROM pg_stat_activity WHERE backend_xid IS NOT NULL "
                    "AND pid <> pg_backend_pid()").fetchone()[0]
                self.oldest = max(self.oldest, float(age))

    def stop(self) -> float:
        self.stopped.set()
        self.thread.join(timeout=5)
        return self.oldest


def prepare(run_count: int) -> str:
    """Migrate, wipe runs, make `run_count` ready runs and a logged-in session; its cookie."""
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from runs import services
    from runs.models import Run

    call_command("migrate", verbosity=0)
    Run.objects.all().delete()
    for i in range(run_count):
        services.submit(name=f"bench-{i % 7}", queue="bench", budget={"tokens": 1000})
    user, _ = User.objects.get_or_create(username="bench-watcher")
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def final_versions() -> dict[str, int]:
    from runs.models import Run

    return {str(pk): version for pk, version in
            Run.objects.filter(queue="bench").exclude(state="ready")
            .values_list("pk", "version")}


async def measure_hub(count: int, rate: float, duration: float, env: dict[str, str],
                      processes: int, profile: str = "") -> dict:
    run_count = max(20, int(rate * duration / EVENTS_PER_RUN) // 20 * 20)
    cookie = await asyncio.to_thread(prepare, run_count)
    server = Server(env)
    base = f"127.0.0.1:{server.port}"
    headers = [("Cookie", f"sessionid={cookie}"), ("Origin", f"http://{base}")]
    try:
        clients = Clients(f"ws://{base}/ws/board/", headers, count, False, processes)
        await clients.expect("ready")
        out = Path(tempfile.gettempdir()) / f"runboard-bench-{os.getpid()}.json"
        if profile:
            server.profile(profile)
        oldest = OldestTransaction(env["DATABASE_URL"])
        cpu_before = server.cpu()
        driver = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--drive", "--rate", str(rate), "--runs", str(run_count),
            "--out", str(out), env=env, cwd=ROOT)
        await driver.wait()
        driven = json.loads(out.read_text())
        out.unlink()
        expected = await asyncio.to_thread(final_versions)
        clients.order({"expected": expected, "committed": driven["committed"]})
        await clients.expect("done")
        cpu = server.cpu() - cpu_before
        held = oldest.stop()
        seen = await clients.results()
    finally:
        server.stop()
    return {"events_committed": len(driven["committed"]), "oldest_transaction_s": held,
            "achieved_rate": len(driven["committed"]) / driven["elapsed"],
            "deliveries": seen["events"], "frames": seen["frames"], "cpu_s": cpu,
            "p50_ms": percentile(seen["latencies"], 0.5) * 1000,
            "p99_ms": percentile(seen["latencies"], 0.99) * 1000,
            "cpu_us_per_delivery": cpu / max(seen["events"], 1) * 1e6,
            "cpu_us_per_frame": cpu / max(seen["frames"], 1) * 1e6,
            "lost_final_states": seen["lost"], "runs": len(expected)}


async def measure_bare(count: int, rate: float, events: int, payload: str,
                       env: dict[str, str], processes: int) -> dict:
    from websockets.asyncio.client import connect

    server = Server(env, app="benchmarks.bare_fanout:application")
    url = f"ws://127.0.0.1:{server.port}/"
    try:
        clients = Clients(url, [], count, True, processes)
        await clients.expect("ready")
        clients.order({"events": events})
        cpu_before = server.cpu()
        async with connect(url, compression=None) as control:
            await control.send(json.dumps({"go": {"rate": rate, "count": events,
                                                  "payload": payload}}))
            await clients.expect("done")
        cpu = server.cpu() - cpu_before
        seen = await clients.results()
    finally:
        server.stop()
    return {"deliveries": seen["events"], "cpu_s": cpu,
            "p50_ms": percentile(seen["latencies"], 0.5) * 1000,
            "p99_ms": percentile(seen["latencies"], 0.99) * 1000,
            "cpu_us_per_delivery": cpu / max(seen["events"], 1) * 1e6, "lost": seen["lost"]}


def sample_payload() -> str:
    """A one-event deltas frame shaped like the hub's (a real run's card)."""
    from runs.models import Run

    run = Run.objects.filter(queue="bench").exclude(state="ready").first()
    event = {"id": str(run.pk), "version": run.version, "from": "running", "to": run.state,
             "kind": "transition", "at": run.state_changed_at.isoformat(), "actor": "bench",
             "reason": "", "run": run.live_data()}
    return json.dumps({"type": "deltas", "position": "1.1", "deltas": [event],
                       "counts": {"ready": 1}}, separators=(",", ":"), default=str)


def spread(values: list[float]) -> str:
    """Median and range of repeated measurements."""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f} to {max(values):.1f})"


async def main(args: argparse.Namespace) -> None:
    os.environ.update(environment("hints"))
    await asyncio.to_thread(create_database, os.environ["DATABASE_URL"])
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()}: "
          f"{args.rate:g} changes/s for ~{args.duration:g} s, one `serve` on PostgreSQL; "
          f"variants {args.variants} back to back, {args.repeat} time(s)", flush=True)
    results: dict[tuple[int, str], list[dict]] = {}
    flagged: list[tuple[int, str, dict]] = []
    for count in args.watchers:
        for attempt in range(args.repeat):
            for variant in args.variants:
                profile = (f"{os.environ['FANOUT_PYSPY']}-{count}-{variant}-{attempt}.svg"
                           if os.environ.get("FANOUT_PYSPY") else "")
                hub = await measure_hub(count, args.rate, args.duration, environment(variant),
                                        args.client_processes, profile)
                note = ""
                if hub["oldest_transaction_s"] > HELD_BACK_AFTER:
                    flagged.append((count, variant, hub))
                    note = " (HELD BACK by another transaction: not in the summary)"
                else:
                    results.setdefault((count, variant), []).append(hub)
                print(f"N={count} {variant:<5}: p50 {hub['p50_ms']:.1f} ms, p99 "
                      f"{hub['p99_ms']:.1f} ms, {hub['cpu_us_per_delivery']:.1f} µs/delivered "
                      f"event ({hub['cpu_us_per_frame']:.1f} µs/frame), "
                      f"{hub['deliveries']:,} deliveries in {hub['frames']:,} frames, lost "
                      f"{hub['lost_final_states']} of {hub['runs'] * count:,} final states, "
                      f"achieved {hub['achieved_rate']:.0f} changes/s; oldest transaction in "
                      f"the cluster {hub['oldest_transaction_s']:.1f} s{note}", flush=True)
        if args.bare:
            payload = await asyncio.to_thread(sample_payload)
            events = hub["events_committed"]
            bare = await measure_bare(count, args.rate, events, payload, environment("poll"),
                                      args.client_processes)
            print(f"N={count} bare : p50 {bare['p50_ms']:.1f} ms, p99 {bare['p99_ms']:.1f} ms, "
                  f"{bare['cpu_us_per_delivery']:.1f} µs/delivery, lost {bare['lost']}",
                  flush=True)
    print("\nwatchers | variant | p50 ms | p99 ms | server µs per delivered event (per frame) "
          "| final states lost | changes/s achieved")
    for (count, variant), runs in results.items():
        print(f"{count} | {variant} | {spread([r['p50_ms'] for r in runs])} | "
              f"{spread([r['p99_ms'] for r in runs])} | "
              f"{spread([r['cpu_us_per_delivery'] for r in runs])} "
              f"({spread([r['cpu_us_per_frame'] for r in runs])}) | "
              f"{sum(r['lost_final_states'] for r in runs)} of "
              f"{sum(r['runs'] * count for r in runs):,} | "
              f"{spread([r['achieved_rate'] for r in runs])}", flush=True)
    for count, variant, hub in flagged:
        print(f"held back ({hub['oldest_transaction_s']:.1f} s transaction in the cluster): "
              f"{count} {variant} p50 {hub['p50_ms']:.0f} ms p99 {hub['p99_ms']:.0f} ms, lost "
              f"{hub['lost_final_states']}", flush=True)


def create_database(url: str) -> None:
    from urllib.parse import urlparse

    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1),
                         autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watchers", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of driving")
    parser.add_argument("--client-processes", type=int, default=2,
                        help="processes sharing the watchers (keeps clients off the hot path)")
    parser.add_argument("--variants", nargs="+", default=["hints", "poll"],
                        choices=["hints", "poll"], help="with Redis hints / poll-only")
    parser.add_argument("--repeat", type=int, default=1, help="back-to-back repeats (medians)")
    parser.add_argument("--bare", action="store_true",
                        help="also measure the bare ASGI baseline (benchmarks/bare_fanout.py)")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.drive:
        drive(arguments.rate, arguments.runs, arguments.out)
    else:
        asyncio.run(main(arguments))
