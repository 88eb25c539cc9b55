"""`python manage.py clock [--interval SECONDS] [--once]`: run the lifecycle clock."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.clock import run_clock


class Command(BaseCommand):
    help = ("Run services.tick every --interval seconds (promote due runs, expire leases, end "
            "backoffs, resume budgets) until SIGINT/SIGTERM. Safe to run several at once.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=1.0,
                            help="Seconds between ticks when nothing more is due (default 1).")
        parser.add_argument("--once", action="store_true", help="Tick once and exit.")

    def handle(self, *args: Any, interval: float, once: bool, **options: Any) -> None:
        if interval <= 0:
            raise CommandError("--interval must be positive")
        stop = threading.Event()
        previous = {}
        if not once and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, lambda *_: stop.set())
        try:
            self.stderr.write(f"clock started (interval {interval}s)")
            ticks = run_clock(interval=interval, stop=stop, once=once)
            self.stderr.write(f"clock stopped after {ticks} tick(s)")
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
