"""`manage.py serve`: daphne and the clock in one process — the embedded default's server.

With the in-memory channel layer every transition must happen inside the server process
(DESIGN.md §5): executors reach it over HTTP, and the clock ticks here as a background task.
With Redis, run several `serve --no-clock` processes and `manage.py clock` separately if you
like. `--port 0` asks the OS for a free port; the line "Runboard serving on http://…" says which.
"""

# daphne.server installs Twisted's asyncio reactor on import: it must come before Twisted.
import daphne.server  # noqa: I001  (import order matters)

import asyncio
import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from runs.server_clock import DEFAULT_INTERVAL_SECONDS, run_clock

logger = logging.getLogger(__name__)

READY_LINE = "Runboard serving on"


class RunboardServer(daphne.server.Server):
    """daphne's server, announcing the port it listens on (for `--port 0`)."""

    def listen_success(self, port: Any) -> None:
        super().listen_success(port)
        host = port.getHost()
        sys.stdout.write(f"{READY_LINE} http://{host.host}:{host.port}/\n")
        sys.stdout.flush()


class Command(BaseCommand):
    help = "Serve Runboard with daphne (HTTP + websockets) and run the clock in the same process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
        parser.add_argument("--no-clock", action="store_true",
                            help="do not tick here (a separate `manage.py clock` does)")
        parser.add_argument("--clock-interval", type=float, default=DEFAULT_INTERVAL_SECONDS)
        parser.add_argument("--proxy-headers", action="store_true",
                            help="trust X-Forwarded-For/-Port/-Proto from a reverse proxy")

    def handle(self, *args: Any, host: str, port: int, no_clock: bool,
               clock_interval: float, proxy_headers: bool, **options: Any) -> None:
        from django.conf import settings
        from django.utils.module_loading import import_string
        from twisted.internet import reactor

        application = import_string(settings.ASGI_APPLICATION)
        if settings.DEBUG:
            # WhiteNoise serves static files from the apps (finders) when DEBUG is on.
            logger.info("DEBUG is on: static files come from the apps, no collectstatic needed")
        server = RunboardServer(
            application=application,
            endpoints=[f"tcp:port={port}:interface={host}"],
            signal_handlers=True,
            action_logger=None,
            verbosity=1,
            # Behind nginx: the client's address and https come from the proxy's headers, so
            # Django sees secure requests (CSRF, secure cookies) as the browser made them.
            proxy_forwarded_address_header="X-Forwarded-For" if proxy_headers else None,
            proxy_forwarded_port_header="X-Forwarded-Port" if proxy_headers else None,
            proxy_forwarded_proto_header="X-Forwarded-Proto" if proxy_headers else None,
        )
        clock_stop = asyncio.Event()
        clock_task: list[asyncio.Task] = []

        def start_clock() -> None:
            clock_task.append(asyncio.ensure_future(run_clock(interval=clock_interval,
                                                              stop=clock_stop)))
            logger.info("clock running in the server process, every %ss", clock_interval)

        def stop_clock() -> Any:
            clock_stop.set()
            if clock_task:
                from twisted.internet.defer import Deferred
                return Deferred.fromFuture(clock_task[0])
            return None

        if no_clock and not settings.CHANNEL_LAYERS["default"]["BACKEND"].startswith(
                "channels_redis"):
            logger.warning("--no-clock with the in-memory channel layer: moves made by a clock "
                           "in another process never reach this server's watchers")
        if not no_clock:
            reactor.callWhenRunning(start_clock)
            reactor.addSystemEventTrigger("before", "shutdown", stop_clock)
        server.run()
