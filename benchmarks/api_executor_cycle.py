"""How many runs per second executors can push through the HTTP API of one `serve` process.

Each simulated executor loops: submit → lease → start → heartbeat → complete (five requests per
run, no work in between), through `runs.client` over loopback. Reports runs/s, requests/s and
latency percentiles per endpoint.

    DEBUG=1 .venv/bin/python benchmarks/api_executor_cycle.py --executors 4 --seconds 15
    DATABASE_URL=postgres://… DEBUG=1 .venv/bin/python benchmarks/api_executor_cycle.py

Without DATABASE_URL it uses a fresh SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executors", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="runboard-bench-")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("RUNBOARD_VAR_DIR", tmp)
    os.environ["DJANGO_SETTINGS_MODULE"] = "dashboard.settings"
    import django

    django.setup()
    from django.core.management import call_command

    from runs.client import ExecutorClient
    from runs.tokens import ExecutorToken

    call_command("migrate", verbosity=0)
    tokens = [ExecutorToken.issue(f"bench-{i}")[1] for i in range(args.executors)]
    server = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "serve", "--port", "0"],
                              stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    url = next(line.split()[-1] for line in server.stdout if line.startswith("Runboard serving"))
    latencies: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    finished = [0]
    stop = threading.Event()

    def executor(token: str) -> None:
        client = ExecutorClient(url, token)
        timed: dict[str, list[float]] = defaultdict(list)

        def timed_call(name: str, call: Callable[[], Any]) -> Any:
            started = time.perf_counter()
            result = call()
            timed[name].append(time.perf_counter() - started)
            return result

        done = 0
        while not stop.is_set():
            run = timed_call("submit", lambda: client.submit("bench", queue=token[-6:]))
            (leased,) = timed_call("lease", lambda: client.lease(queues=[token[-6:]]))
            assert leased["id"] == run["id"]
            run_id = run["id"]
            timed_call("start", partial(client.start, run_id))
            timed_call("heartbeat", partial(client.heartbeat, run_id, progress=50))
            timed_call("complete", partial(client.complete, run_id, {"ok": True}))
            done += 1
        client.close()
        with lock:
            finished[0] += done
            for name, values in timed.items():
                latencies[name] += values

    threads = [threading.Thread(target=executor, args=(t,)) for t in tokens]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    server.send_signal(signal.SIGINT)
    server.wait(timeout=15)

    backend = "PostgreSQL" if "postgres" in os.environ.get("DATABASE_URL", "") else "SQLite"
    requests = sum(len(v) for v in latencies.values())
    print(f"{backend}, {args.executors} executors, {elapsed:.1f} s: "
          f"{finished[0] / elapsed:.1f} runs/s, {requests / elapsed:.1f} requests/s")
    for name, values in latencies.items():
        values.sort()
        p95 = values[int(len(values) * 0.95) - 1]
        print(f"  {name:9s} p50 {statistics.median(values) * 1000:6.1f} ms   "
              f"p95 {p95 * 1000:6.1f} ms   n={len(values)}")


if __name__ == "__main__":
    main()
