"""Task functions the tests enqueue; the worker subprocess imports them by module path."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from runs.tasks import RunboardContext, RunStopped
from runs.tasks.compat import task


@task
def add(a: int, b: int) -> int:
    return a + b


@task
async def add_later(a: int, b: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"sum": a + b}


@task(takes_context=True)
def which_attempt(context: RunboardContext) -> dict[str, object]:
    return {"attempt": context.attempt, "run_id": context.run_id}


@task(max_attempts=2, backoff_base=0.05, backoff_jitter=0)
def explode(message: str) -> None:
    raise ValueError(message)


@task
def noop() -> None:
    return None


@task(queue_name="tasks")
def stamp(label: str) -> str:
    return label


@task(takes_context=True)
def slow(context: RunboardContext, steps: int, marker: str) -> int:
    """`steps` steps of 0.1 s, reporting progress; notes in `marker` how it ended."""
    path = Path(marker)
    path.write_text("started\n")
    try:
        for step in range(1, steps + 1):
            time.sleep(0.1)
            context.report(progress=step * 100 // steps)
    except RunStopped as stopped:
        path.write_text(f"started\nstopped: {stopped}\n")
        raise
    path.write_text("started\nfinished\n")
    return steps


@task
def stubborn(seconds: float, marker: str) -> None:
    """Ignores every request to stop (no context): only the grace period ends it."""
    Path(marker).write_text("started\n")
    time.sleep(seconds)


@task(takes_context=True, budget={"tokens": 100})
def metered(context: RunboardContext) -> None:
    """Spends 30 tokens a step, forever: only its budget stops it."""
    while True:
        context.report(consumed={"tokens": 30})
        time.sleep(0.02)


@task
def returns_a_set() -> object:
    return {1, 2}
