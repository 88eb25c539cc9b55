"""The worker loop: lease into free slots, heartbeat, tick the clock, drain on stop.

One main thread leases and starts runs in one transaction (`services.lease(start=True)`: one
commit instead of two per run), only as many as it has free slots, so nothing waits in a
worker while another could run it and every run it holds is one a slot is about to call. It
heartbeats every running attempt each third of the lease and, unless told not to, ticks the
clock so deferred tasks and retries come due without a separate `manage.py clock`. Each slot
is a daemon thread running one attempt at a time: a task that ignores every request to stop
cannot keep the process alive past its grace period. While work is waiting, a slot leases its
next run itself, in the transaction that records its last outcome (`Attempt.then`): the main
thread leases only into slots that found nothing.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import DatabaseError, close_old_connections, connection
from django.utils.crypto import get_random_string

from .. import services
from ..exceptions import TransitionError
from ..models import Run
from ..tasks.exceptions import WorkerShutDown
from .attempt import Attempt, class_path

logger = logging.getLogger(__name__)

CLOCK_INTERVAL = 1.0


def worker_id() -> str:
    """A name for this worker process in leases, audit rows and `TaskResult.worker_ids`."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{get_random_string(4)}"


@dataclass
class Worker:
    """Runs django.tasks runs of `queues` with `concurrency` slots until `stop` is set."""

    queues: list[str]
    concurrency: int = 1
    lease_seconds: int = 30
    poll_interval: float = 0.2
    grace_seconds: float = 25.0
    clock: bool = True
    executor: str = field(default_factory=worker_id)

    def __post_init__(self) -> None:
        self._slots: queue.Queue[Attempt | None] = queue.Queue()
        self._active: dict[object, Attempt] = {}
        self._active_lock = threading.Lock()  # slots add their successors; the loop prunes
        self._slot_freed = threading.Event()
        self._stopping = threading.Event()
        self.executed = 0

    def run(self, stop: threading.Event) -> int:
        """Work until `stop` is set, then drain; return how many attempts ran."""
        threads = [threading.Thread(target=self._slot, name=f"runboard-slot-{i}", daemon=True)
                   for i in range(self.concurrency)]
        for thread in threads:
            thread.start()
        logger.info("worker %s started: queues=%s concurrency=%d lease=%ss",
                    self.executor, ",".join(self.queues), self.concurrency, self.lease_seconds)
        next_heartbeat = next_tick = time.monotonic()
        while not stop.is_set():
            self._forget_finished()
            leased = self._lease()
            now = time.monotonic()
            if now >= next_heartbeat:
                self._heartbeat()
                next_heartbeat = now + self.lease_seconds / 3
            if self.clock and now >= next_tick:
                self._tick()
                next_tick = now + CLOCK_INTERVAL
            if not leased:
                # Idle or full: wake when a slot frees (or stop), else poll again.
                self._slot_freed.wait(self.poll_interval)
                self._slot_freed.clear()
        self._stopping.set()
        self._drain(threads)
        return self.executed

    # -- the loop's steps ----------------------------------------------------------------------

    def _lease(self) -> int:
        free = self.concurrency - len(self._active)
        if free <= 0:
            return 0
        try:
            runs = services.lease(executor=self.executor, queues=self.queues, limit=free,
                                  lease_seconds=self.lease_seconds, start=True)
        except DatabaseError:
            logger.exception("worker %s: lease failed; retrying", self.executor)
            close_old_connections()
            return 0
        for attempt in self._adopt(runs):
            self._slots.put(attempt)
        return len(runs)

    def _adopt(self, runs: list[Run]) -> list[Attempt]:
        attempts = [Attempt(run, executor=self.executor, then=self._lease_next) for run in runs]
        with self._active_lock:
            self._active.update((attempt.run_id, attempt) for attempt in attempts)
        return attempts

    def _lease_next(self) -> list[Run]:
        """A slot's next run, leased and started inside the transaction of its last outcome."""
        if self._stopping.is_set():
            return []
        return services.lease(executor=self.executor, queues=self.queues, limit=1,
                              lease_seconds=self.lease_seconds, start=True)

    def _heartbeat(self) -> None:
        for attempt in self._attempts():
            try:
                attempt.heartbeat()
            except DatabaseError:
                logger.exception("run %s: heartbeat failed; retrying", attempt.run_id)
                close_old_connections()

    def _tick(self) -> None:
        try:
            services.tick()
        except DatabaseError:
            logger.exception("worker %s: clock tick failed; retrying", self.executor)
            close_old_connections()

    def _attempts(self) -> list[Attempt]:
        with self._active_lock:
            return list(self._active.values())

    def _forget_finished(self) -> None:
        with self._active_lock:
            for run_id in [key for key, a in self._active.items() if a.finished.is_set()]:
                del self._active[run_id]

    def _slot(self) -> None:
        while True:
            attempt = self._slots.get()
            if attempt is None:
                break
            while attempt is not None:
                attempt.execute()
                self.executed += 1
                # The successor joins `_active` before its predecessor leaves, so the loop
                # never counts this slot free while it has work.
                successor = self._adopt(attempt.successors[:1])
                attempt.finished.set()
                attempt = successor[0] if successor else None
            self._slot_freed.set()
        connection.close()

    # -- stopping ------------------------------------------------------------------------------

    def _drain(self, threads: Iterable[threading.Thread]) -> None:
        """Let running attempts finish within the grace period; fail the ones that do not.

        Every run the worker holds is started and has a free slot calling it (or about to),
        so draining leases nothing more and waits; nothing is left to give back.
        """
        logger.info("worker %s: draining (%d running, grace %ss)", self.executor,
                    len(self._attempts()), self.grace_seconds)
        for _ in threads:
            self._slots.put(None)
        deadline = time.monotonic() + self.grace_seconds
        next_heartbeat = time.monotonic()
        while time.monotonic() < deadline:
            running = [a for a in self._attempts() if not a.finished.is_set()]
            if not running:
                break
            if time.monotonic() >= next_heartbeat:
                self._heartbeat()
                next_heartbeat = time.monotonic() + self.lease_seconds / 3
            running[0].finished.wait(0.1)
        for attempt in self._attempts():
            if not attempt.finished.is_set():
                self._abandon(attempt)
        logger.info("worker %s stopped after %d attempt(s)", self.executor, self.executed)

    def _abandon(self, attempt: Attempt) -> None:
        """The grace period is over and the task still runs: stop it and fail this attempt,
        so the run retries (with backoff) on another worker instead of waiting for a lapse."""
        attempt.stop("the worker shut down before the task finished")
        with attempt.lock:
            try:
                services.fail(attempt.run_id, executor=self.executor, retryable=True,
                              error=f"{class_path(WorkerShutDown)}: worker {self.executor} "
                                    f"shut down after a {self.grace_seconds:g}s grace period")
            except TransitionError as error:
                logger.info("run %s: not failed at shutdown: %s", attempt.run_id, error)
