"""Real django.tasks tasks for the demo (`make run`): enqueued with `.enqueue()`, executed by a
`manage.py runboard_worker` process on the "tasks" queue, shown on the board like every run.

Four kinds: quick, slow with progress, flaky (fails its first attempts, then succeeds) and
budgeted (spends tokens until its budget suspends it; the demo operator replenishes it).
"""

from __future__ import annotations

import hashlib
import logging
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, close_old_connections

from .tasks import RunboardContext
from .tasks.compat import task

logger = logging.getLogger(__name__)

QUEUE = "tasks"
BACKLOG_LIMIT = 20  # the enqueuer pauses while this many demo tasks wait


@task(queue_name=QUEUE)
def checksum(text: str) -> str:
    """Quick: a SHA-256 of a short text."""
    return hashlib.sha256(text.encode()).hexdigest()


@task(queue_name=QUEUE, takes_context=True)
def render_thumbnails(context: RunboardContext, images: int) -> dict[str, int]:
    """Slow with progress: one image every 0.4 s, reported as it goes."""
    for done in range(1, images + 1):
        time.sleep(0.4)
        context.report(progress=done * 100 // images)
    return {"images": images}


@task(queue_name=QUEUE, takes_context=True, max_attempts=4, backoff_base=2, backoff_cap=10)
def call_flaky_partner(context: RunboardContext, failures: int) -> str:
    """Flaky: raises on its first `failures` attempts, then succeeds."""
    time.sleep(0.5)
    if context.attempt <= failures:
        raise ConnectionError(f"partner API timed out (attempt {context.attempt})")
    return f"ok after {context.attempt} attempt(s)"


@task(queue_name=QUEUE, takes_context=True, budget={"tokens": 400})
def summarize_with_llm(context: RunboardContext, chunks: int) -> dict[str, int]:
    """Budgeted: 60 tokens per chunk against a 400-token budget; long documents get suspended
    until someone replenishes the budget, then start over."""
    for done in range(1, chunks + 1):
        time.sleep(0.5)
        context.report(progress=done * 100 // chunks, consumed={"tokens": 60})
    return {"chunks": chunks, "tokens": 60 * chunks}


def enqueue_one(rng: random.Random) -> None:
    """Enqueue one demo task of a random kind."""
    kind = rng.choices(["quick", "slow", "flaky", "budgeted"], [4, 3, 2, 2])[0]
    if kind == "quick":
        checksum.enqueue(f"document-{rng.randrange(10_000)}")
    elif kind == "slow":
        render_thumbnails.using(priority=rng.choice([0, 0, 10])).enqueue(rng.randint(5, 20))
    elif kind == "flaky":
        call_flaky_partner.enqueue(rng.choice([0, 1, 2, 5]))
    else:
        summarize_with_llm.enqueue(rng.randint(3, 10))


def enqueue_loop(*, rate: float, stop: threading.Event, seed: int | None = None) -> None:
    """Enqueue demo tasks at about `rate` per second until `stop` is set."""
    from .models import Run
    from .states import RunState

    rng = random.Random(seed)
    while not stop.wait(rng.expovariate(rate)):
        try:
            waiting = Run.objects.filter(queue=QUEUE, state=RunState.READY).count()
            if waiting < BACKLOG_LIMIT:
                enqueue_one(rng)
        except DatabaseError:
            logger.exception("demo: enqueueing a task failed; going on")
            close_old_connections()


class DemoTasks:
    """The demo's task side: a `runboard_worker` child process and an enqueuing thread."""

    STOP_TIMEOUT = 30  # the worker's grace period (25 s) and then some

    def __init__(self, *, rate: float, stop: threading.Event, seed: int | None,
                 preexec_fn: Callable[[], None] | None) -> None:
        from django.conf import settings

        self.stop_event = stop
        # The server's clock (and the demo's) promote and retry: this worker only executes.
        self.worker = subprocess.Popen(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "runboard_worker",
             "--queue", QUEUE, "--concurrency", "3", "--lease-seconds", "6", "--no-clock"],
            preexec_fn=preexec_fn,
        )
        self.enqueuer = threading.Thread(
            target=enqueue_loop, kwargs={"rate": rate, "stop": stop, "seed": seed},
            name="demo-tasks", daemon=True)
        self.enqueuer.start()

    def close(self) -> None:
        """Stop enqueueing; SIGTERM the worker so it drains, and wait for it."""
        self.stop_event.set()
        self.enqueuer.join(timeout=5)
        if self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(timeout=self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
