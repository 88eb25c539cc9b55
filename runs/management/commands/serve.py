"""`manage.py serve`: daphne serving Runboard (HTTP and websockets).

Boards read the database's change log, so a change made by any process — another server, a
`manage.py clock`, a worker, a script — reaches every board of every server; run the clock as
its own process (`make run`'s demo does). `--port 0` asks the OS for a free port; the line
"Runboard serving on http://…" says which.
"""

# daphne.server installs Twisted's asyncio reactor on import: it must come before Twisted.
import daphne.server  # noqa: I001  (import order matters)

import logging
import sys
from typing import Any

from daphne.http_protocol import HTTPFactory, WebRequest
from django.core.management.base import BaseCommand, CommandParser

logger = logging.getLogger(__name__)

READY_LINE = "Runboard serving on"


class RunboardRequest(WebRequest):
    """daphne's request, without Twisted's parsing of form bodies into `request.args`, which
    daphne never reads (Django parses bodies itself). For it Twisted parsed the Content-Type
    of every POST with the `email` package: 6 % of the server's CPU under executor load."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)


class RunboardHTTPFactory(HTTPFactory):
    """daphne's HTTP factory, making `RunboardRequest`s."""

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = RunboardRequest
        return protocol


# `Server.run` builds its HTTP factory from this module global (daphne has no option for it).
daphne.server.HTTPFactory = RunboardHTTPFactory


class RunboardServer(daphne.server.Server):
    """daphne's server, announcing the port it listens on (for `--port 0`)."""

    def listen_success(self, port: Any) -> None:
        super().listen_success(port)
        host = port.getHost()
        sys.stdout.write(f"{READY_LINE} http://{host.host}:{host.port}/\n")
        sys.stdout.flush()


class Command(BaseCommand):
    help = "Serve Runboard with daphne (HTTP + websockets)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
        parser.add_argument("--proxy-headers", action="store_true",
                            help="trust X-Forwarded-For/-Port/-Proto from a reverse proxy")

    def handle(self, *args: Any, host: str, port: int, proxy_headers: bool,
               **options: Any) -> None:
        from django.conf import settings
        from django.utils.module_loading import import_string

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
        server.run()
