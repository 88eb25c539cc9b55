"""`python manage.py runboard_worker`: execute django.tasks tasks stored as Runboard runs."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.tasks import RunboardBackend
from runs.tasks.compat import task_backends
from runs.worker.runner import Worker


def backend_queues() -> list[str]:
    """Every queue of every Runboard backend in TASKS: what a worker serves by default."""
    queues: set[str] = set()
    for alias in task_backends.settings:
        backend = task_backends[alias]
        if isinstance(backend, RunboardBackend):
            queues |= backend.queues
    return sorted(queues)


class Command(BaseCommand):
    help = ("Run django.tasks tasks enqueued with runs.tasks.RunboardBackend: lease, run, "
            "heartbeat, complete or fail (with retries). SIGTERM/SIGINT drain and exit 0.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", action="append", dest="queues", default=None,
                            help="a queue to serve (repeatable; default: every queue in "
                                 "TASKS of a Runboard backend)")
        parser.add_argument("--concurrency", type=int, default=1,
                            help="tasks run at once, each in its own thread (default 1)")
        parser.add_argument("--lease-seconds", type=int, default=30,
                            help="lease length; heartbeats every third of it (default 30)")
        parser.add_argument("--grace-seconds", type=float, default=25.0,
                            help="on SIGTERM, how long running tasks may take to finish")
        parser.add_argument("--poll-interval", type=float, default=0.2,
                            help="seconds between lease attempts while idle (default 0.2)")
        parser.add_argument("--no-clock", action="store_true",
                            help="do not tick the clock (a separate `manage.py clock` runs)")

    def handle(self, *args: Any, queues: list[str] | None, concurrency: int,
               lease_seconds: int, grace_seconds: float, poll_interval: float,
               no_clock: bool, **options: Any) -> None:
        if concurrency < 1 or lease_seconds < 3 or grace_seconds < 0 or poll_interval <= 0:
            raise CommandError("need --concurrency ≥ 1, --lease-seconds ≥ 3, "
                               "--grace-seconds ≥ 0 and --poll-interval > 0")
        queues = [q for entry in queues or [] for q in entry.split(",") if q] or backend_queues()
        if not queues:
            raise CommandError("no queues: configure TASKS with runs.tasks.RunboardBackend "
                               "or pass --queue")
        worker = Worker(queues=queues, concurrency=concurrency, lease_seconds=lease_seconds,
                        grace_seconds=grace_seconds, poll_interval=poll_interval,
                        clock=not no_clock)
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        self.stderr.write(f"runboard worker {worker.executor} serving {', '.join(queues)}")
        executed = worker.run(stop)
        self.stderr.write(f"runboard worker {worker.executor} stopped after {executed} task(s)")
