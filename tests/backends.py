"""Which external services the suite can reach: `python -m tests.backends postgres|redis|chromium`.

Exits 0 when reachable, 1 otherwise (printing what is missing). The Makefile uses it to skip
the PostgreSQL + Redis pass outside CI; under CI=true a missing service is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from urllib.parse import urlparse

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/runboard"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CHROMIUM = "/usr/bin/chromium"


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port),
                                      timeout=2):
            return True
    except OSError:
        return False


def missing(service: str) -> str | None:
    """A sentence saying what is missing, or None when the service is there."""
    if service == "postgres":
        url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
        return None if reachable(url, 5432) else f"PostgreSQL is not reachable at {url}"
    if service == "redis":
        url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL)
        return None if reachable(url, 6379) else f"Redis is not reachable at {url}"
    if service == "chromium":
        return None if shutil.which(CHROMIUM) else f"Chromium is not installed at {CHROMIUM}"
    raise SystemExit(f"unknown service {service!r}")


if __name__ == "__main__":
    problems = [p for p in (missing(s) for s in sys.argv[1:]) if p]
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)
