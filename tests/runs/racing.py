"""Run callables in threads that start together; each thread closes its own connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def race(workers: list[Callable[[], Any]], *, timeout: float = 60) -> list[tuple[str, Any]]:
    """Start every worker at once; return ("ok", result) or ("error", exception) per worker."""
    barrier = threading.Barrier(len(workers))
    outcomes: list[tuple[str, Any] | None] = [None] * len(workers)

    def run(index: int, work: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=timeout)
            outcomes[index] = ("ok", work())
        except BaseException as error:
            outcomes[index] = ("error", error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
        assert not thread.is_alive(), "a racing worker hung"
    return [outcome for outcome in outcomes if outcome is not None]
