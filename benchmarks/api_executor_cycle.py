"""How many runs per second executors push through the HTTP API of one `serve` process.

Each executor is its own process looping submit → lease → start → heartbeat → complete over
loopback with httpx, no work in between. With the `lease-start` protocol the lease also starts
the run (`{"start": true}`), four requests per run instead of five. Every variant is a checkout
of the code (today's next to yours) served by its own `manage.py serve`, one after the other on
the same database, repeated; it prints runs/s, requests/s, p50/p99 per request and per
endpoint, and the server's CPU per run, as medians over the repeats with their spread.

    git worktree add --detach /tmp/api-before main && ln -s "$PWD/.venv" /tmp/api-before/.venv
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/runboard \
        .venv/bin/python benchmarks/api_executor_cycle.py \
        --variant before=/tmp/api-before:split --variant after=.:lease-start

Without DATABASE_URL it uses a fresh SQLite file. On PostgreSQL it creates its own database
(`runboard_bench_api_<pid>`, so that it never meets another benchmark's) on the server that
DATABASE_URL names, and drops it at the end; the configured database is never touched.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = ("split", "lease-start")
READY_LINE = "Runboard serving on"


@dataclass
class Variant:
    """One checkout of the code and the way its executors talk to it."""

    name: str
    tree: Path
    protocol: str


@dataclass
class Result:
    """One measurement of one variant."""

    runs_per_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_run: float
    endpoints: dict[str, tuple[float, float]] = field(default_factory=dict)


def parse_variant(text: str) -> Variant:
    """`name=path[:protocol]`; the protocol is `split` (default) or `lease-start`."""
    name, _, rest = text.partition("=")
    tree, _, protocol = rest.partition(":")
    protocol = protocol or "split"
    if not name or not tree or protocol not in PROTOCOLS:
        raise argparse.ArgumentTypeError(f"expected name=path[:{'|'.join(PROTOCOLS)}]")
    return Variant(name, Path(tree).resolve(), protocol)


# -- the database ---------------------------------------------------------------------------------


def create_database(configured: str | None) -> tuple[str, str | None]:
    """(URL of the benchmark's database, its PostgreSQL name or None for SQLite)."""
    if configured and configured.startswith(("postgres://", "postgresql://")):
        import psycopg

        name = f"runboard_bench_api_{os.getpid()}"
        parsed = urlparse(configured)
        with psycopg.connect(urlunparse(parsed._replace(path="/postgres")),
                             autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        return urlunparse(parsed._replace(path=f"/{name}")), name
    path = Path(tempfile.mkdtemp(prefix="runboard-bench-api-")) / "bench.sqlite3"
    return f"sqlite:///{path}", None


def drop_database(url: str, name: str | None) -> None:
    if name is None:
        return
    import psycopg

    with psycopg.connect(urlunparse(urlparse(url)._replace(path="/postgres")),
                         autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def server_env(url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in {"DJANGO_SETTINGS_MODULE", "REDIS_URL", "DEBUG"}}
    env.update(DATABASE_URL=url, SECRET_KEY="benchmark-only-secret-key", DEBUG="0",
               LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1",
               RUNBOARD_VAR_DIR=tempfile.mkdtemp(prefix="runboard-bench-var-"))
    return env


def manage(tree: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, str(tree / "manage.py"), *args], cwd=tree, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"manage.py {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


ISSUE_TOKENS = """
from runs.tokens import ExecutorToken
for i in range({count}):
    print(ExecutorToken.issue(f"bench-{{i}}")[1])
"""

EMPTY_RUNS = """
from django.db import connection
from runs.models import Run, Transition
from runs.changelog.models import Change
with connection.cursor() as cursor:
    tables = ", ".join(m._meta.db_table for m in (Change, Transition, Run))
    if connection.vendor == "postgresql":
        cursor.execute(f"TRUNCATE {tables}")
        cursor.execute("VACUUM ANALYZE")
    else:
        for table in tables.split(", "):
            cursor.execute(f"DELETE FROM {table}")
"""


# -- the executors --------------------------------------------------------------------------------


def executor(url: str, token: str, queue: str, protocol: str, go: Any, stop: Any,
             out: Any) -> None:
    """One executor's loop; sends back (runs done, {endpoint: [seconds, …]})."""
    import httpx

    client = httpx.Client(base_url=url + "api/", timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    timings: dict[str, list[float]] = {}

    def post(name: str, path: str, body: dict[str, Any]) -> Any:
        started = time.perf_counter()
        response = client.post(path, json=body)
        timings.setdefault(name, []).append(time.perf_counter() - started)
        if response.is_error:
            raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
        return response.json()

    def one_run() -> None:
        run = post("submit", "runs", {"name": "bench", "queue": queue})
        if protocol == "lease-start":
            (leased,) = post("lease+start", "lease", {"queues": [queue], "start": True})["runs"]
            assert leased["state"] == "running", leased
        else:
            (leased,) = post("lease", "lease", {"queues": [queue]})["runs"]
            post("start", f"runs/{run['id']}/start", {})
        assert leased["id"] == run["id"], (leased, run)
        post("heartbeat", f"runs/{run['id']}/heartbeat", {"progress": 50})
        post("complete", f"runs/{run['id']}/complete", {"result": {"ok": True}})

    done = 0
    go.wait()
    try:
        while not stop.is_set():
            one_run()
            done += 1
    except Exception as error:  # the driver reports it: never a silent hang
        out.put((-1, {"error": repr(error)}))
        return
    finally:
        client.close()
    out.put((done, timings))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def stop_server(server: subprocess.Popen) -> None:
    """SIGINT (daphne stops cleanly), then SIGKILL if it does not."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def drive(pid: int, url: str, variant: Variant, tokens: list[str], seconds: float,
          label: str) -> tuple[list[tuple[int, dict[str, Any]]], float, float]:
    """One executor process per token for `seconds`: (reports, elapsed s, server CPU s)."""
    context = mp.get_context("spawn")
    go, stop, out = context.Event(), context.Event(), context.Queue()
    workers = [context.Process(target=executor, args=(url, token, f"{label}-{i}",
                                                      variant.protocol, go, stop, out),
                                 daemon=True)
               for i, token in enumerate(tokens)]
    for worker in workers:
        worker.start()
    time.sleep(2)  # let the executors import httpx before the clock starts
    cpu_before = cpu_seconds(pid)
    began = time.perf_counter()
    go.set()
    time.sleep(seconds)
    stop.set()
    # Runs in flight when the clock stops still finish and count: the time includes them.
    reports = [out.get(timeout=60) for _ in workers]
    elapsed = time.perf_counter() - began
    cpu = cpu_seconds(pid) - cpu_before
    for worker in workers:
        worker.join()
    return reports, elapsed, cpu


def measure(variant: Variant, env: dict[str, str], tokens: list[str], seconds: float,
            label: str) -> Result:
    """Serve `variant` and drive it with one process per token for `seconds`."""
    manage(ROOT, env, "shell", "-c", EMPTY_RUNS)
    server = subprocess.Popen([sys.executable, str(variant.tree / "manage.py"), "serve",
                               "--port", "0"], cwd=variant.tree, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert server.stdout is not None
    url = ""
    for line in server.stdout:
        if line.startswith(READY_LINE):
            url = line.split()[-1]
            break
    if not url:
        stop_server(server)
        raise SystemExit(f"{variant.name}: the server did not start")
    print(f"{variant.name}: serving at {url} as pid {server.pid}", flush=True)
    try:
        reports, elapsed, cpu = drive(server.pid, url, variant, tokens, seconds, label)
    finally:
        stop_server(server)
    failures = [timings["error"] for done, timings in reports if done < 0]
    if failures:
        raise SystemExit(f"{variant.name}: an executor failed: {failures[0]}")
    runs = sum(done for done, _ in reports)
    by_endpoint: dict[str, list[float]] = {}
    for _, timings in reports:
        for name, values in timings.items():
            by_endpoint.setdefault(name, []).extend(values)
    every = [value for values in by_endpoint.values() for value in values]
    return Result(
        runs_per_s=runs / elapsed, requests_per_s=len(every) / elapsed,
        p50_ms=statistics.median(every) * 1000, p99_ms=percentile(every, 0.99) * 1000,
        cpu_ms_per_run=cpu * 1000 / max(runs, 1),
        endpoints={name: (statistics.median(values) * 1000, percentile(values, 0.99) * 1000)
                   for name, values in by_endpoint.items()},
    )


# -- the report -----------------------------------------------------------------------------------


def spread(values: list[float], digits: int = 1) -> str:
    """The median, and the range when repeated."""
    middle = f"{statistics.median(values):,.{digits}f}"
    if len(values) == 1:
        return middle
    return f"{middle} ({min(values):,.{digits}f} to {max(values):,.{digits}f})"


def report(variants: list[Variant], results: dict[str, list[Result]], *, backend: str,
           executors: int, seconds: float) -> None:
    base = statistics.median(r.runs_per_s for r in results[variants[0].name])
    print(f"\n{backend}, {executors} executors, {seconds:g} s per measurement, "
          f"{len(results[variants[0].name])} repeats: median (min to max)\n")
    print(f"| variant | protocol | runs/s | x {variants[0].name} | requests/s | p50 ms | p99 ms "
          "| server CPU ms/run |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in variants:
        rs = results[variant.name]
        ratio = statistics.median(r.runs_per_s for r in rs) / base
        print(f"| {variant.name} | {variant.protocol} | {spread([r.runs_per_s for r in rs])} "
              f"| {ratio:.2f}x | {spread([r.requests_per_s for r in rs])} "
              f"| {spread([r.p50_ms for r in rs])} | {spread([r.p99_ms for r in rs])} "
              f"| {spread([r.cpu_ms_per_run for r in rs])} |")
    print("\np50 / p99 ms per endpoint (medians over repeats):")
    for variant in variants:
        rs = results[variant.name]
        parts = [f"{name} {statistics.median(r.endpoints[name][0] for r in rs):.1f} / "
                 f"{statistics.median(r.endpoints[name][1] for r in rs):.1f}"
                 for name in rs[0].endpoints]
        print(f"  {variant.name}: " + ", ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", type=parse_variant, dest="variants",
                        help="name=path[:split|lease-start]; the first is the baseline")
    parser.add_argument("--executors", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    variants = args.variants or [Variant("today", ROOT, "split")]

    url, database = create_database(os.environ.get("DATABASE_URL"))
    backend = "PostgreSQL" if database else "SQLite"
    env = server_env(url)
    try:
        manage(ROOT, env, "migrate", "--verbosity", "0")
        printed = manage(ROOT, env, "shell", "-c", ISSUE_TOKENS.format(count=args.executors))
        # The shell also prints what it imported: keep only the tokens.
        tokens = [word for word in printed.split() if word.startswith("rbx_")]
        results: dict[str, list[Result]] = {variant.name: [] for variant in variants}
        for repeat in range(args.repeat):
            # Alternate the order, so that neither variant always runs on a warmer machine.
            order = variants if repeat % 2 == 0 else variants[::-1]
            for variant in order:
                result = measure(variant, env, tokens, args.seconds,
                                 label=f"{variant.name}-{repeat}")
                results[variant.name].append(result)
                print(f"{variant.name} #{repeat + 1}: {result.runs_per_s:.1f} runs/s, "
                      f"{result.requests_per_s:.1f} requests/s, p50 {result.p50_ms:.1f} ms, "
                      f"p99 {result.p99_ms:.1f} ms, {result.cpu_ms_per_run:.1f} ms CPU/run",
                      flush=True)
        report(variants, results, backend=backend, executors=args.executors,
               seconds=args.seconds)
    finally:
        drop_database(url, database)


if __name__ == "__main__":
    main()
