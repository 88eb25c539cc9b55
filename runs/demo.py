"""The demo's simulated world: a submitter, executors and an operator, all over the HTTP API.

Nothing here touches the database: every change goes through the server's API, so on the
embedded default (in-memory channel layer) the board sees all of it. The mix of work is chosen
so that every one of the nine states shows up within a minute: delayed runs (scheduled), a
backlog (ready), a setup pause after leasing (leased), progress (running), failures with
backoff (retry_wait), runs that run out of retries or fail fatally (failed), budgets that run
out (suspended) and get replenished, and an operator who cancels now and then (canceled).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .client import ApiRefused, ExecutorClient, Job, NonRetryable, OperatorClient, RunStopped
from .states import RunState

logger = logging.getLogger(__name__)

WORK_STEP_SECONDS = 0.5
EXECUTOR_LEASE_SECONDS = 6  # heartbeats every 2 s
BACKLOG_LIMIT = 40  # the submitter pauses while this many runs wait to be leased
QUEUES = ("default", "reports", "ingest")


@dataclass(frozen=True)
class Kind:
    """One kind of simulated work and how often it is submitted."""

    name: str
    weight: int
    make: Callable[[random.Random], dict[str, Any]]


def _quick(rng: random.Random) -> dict[str, Any]:
    return {"payload": {"work_seconds": rng.uniform(2, 6)}}


def _flaky(rng: random.Random) -> dict[str, Any]:
    return {"payload": {"work_seconds": rng.uniform(1, 3), "fail_attempts": rng.choice([1, 2])},
            "max_attempts": 3, "backoff": {"base": 3, "factor": 2, "cap": 20, "jitter": 0.2}}


def _doomed(rng: random.Random) -> dict[str, Any]:
    return {"payload": {"work_seconds": rng.uniform(1, 2), "fail_attempts": 99},
            "max_attempts": 2, "backoff": {"base": 2, "factor": 2, "cap": 10, "jitter": 0.1}}


def _fatal(rng: random.Random) -> dict[str, Any]:
    return {"payload": {"work_seconds": rng.uniform(1, 2), "fatal": True}}


def _metered(rng: random.Random) -> dict[str, Any]:
    return {"payload": {"work_seconds": rng.uniform(6, 9), "tokens_per_step": 50},
            "budget": {"tokens": rng.choice([300, 400, 500])}}


def _delayed(rng: random.Random) -> dict[str, Any]:
    at = datetime.now(UTC) + timedelta(seconds=rng.uniform(8, 30))
    return {"payload": {"work_seconds": rng.uniform(2, 4)}, "scheduled_at": at.isoformat()}


KINDS: tuple[Kind, ...] = (
    Kind("send-report", 30, _quick),
    Kind("sync-crm", 16, _flaky),
    Kind("scrape-partner", 8, _doomed),
    Kind("import-ledger", 4, _fatal),
    Kind("summarize-docs", 14, _metered),
    Kind("nightly-backup", 14, _delayed),
)


def submission(kind: Kind, rng: random.Random) -> dict[str, Any]:
    """The body of `POST /api/runs` for one run of `kind`."""
    body = {"name": kind.name, "queue": rng.choice(QUEUES), "priority": rng.choice([0, 0, 0, 5]),
            **kind.make(rng)}
    body["payload"] = {**body["payload"], "kind": kind.name}
    return body


def simulated_work(job: Job, *, stop: threading.Event) -> dict[str, Any]:
    """What an executor does with a demo run: steps with progress, consumption, failures."""
    spec = job.payload or {}
    steps = max(1, round(float(spec.get("work_seconds", 3)) / WORK_STEP_SECONDS))
    for step in range(1, steps + 1):
        if job.should_stop.wait(WORK_STEP_SECONDS):
            raise RunStopped(job.stop_reason)
        if stop.is_set():
            raise RunStopped("the demo is shutting down")
        job.progress(step * 100 // steps)
        if spec.get("tokens_per_step"):
            job.consume(tokens=spec["tokens_per_step"])
    if spec.get("fatal"):
        raise NonRetryable("ledger file is corrupt (simulated, not retryable)")
    if job.run.get("attempts", 1) <= int(spec.get("fail_attempts", 0)):
        raise ConnectionError(f"upstream timed out on attempt {job.run.get('attempts')} "
                              "(simulated)")
    return {"items": steps * 10, "kind": spec.get("kind")}


@dataclass
class World:
    """Everything the simulated actors share."""

    base_url: str
    submitter_token: str
    executor_tokens: list[str]
    operator: tuple[str, str]  # username, password
    rate: float  # new runs per second
    stop: threading.Event = field(default_factory=threading.Event)
    seen_states: dict[str, float] = field(default_factory=dict)  # state -> seconds to first see
    seed: int | None = None

    def threads(self) -> list[threading.Thread]:
        actors: list[tuple[str, Callable[[], None]]] = [("demo-submitter", self.submit_loop),
                                                        ("demo-operator", self.operator_loop)]
        actors += [(f"demo-exec-{i + 1}", lambda t=token: self.executor_loop(t))
                   for i, token in enumerate(self.executor_tokens)]
        return [threading.Thread(target=act, name=name, daemon=True) for name, act in actors]

    def submit_loop(self) -> None:
        rng = random.Random(self.seed)
        client = ExecutorClient(self.base_url, self.submitter_token)
        try:
            for kind in KINDS:  # one of each at once, so every path starts right away
                for _ in range(2):
                    self._quietly(lambda k=kind: client.submit(**submission(k, rng)))
            weights = [kind.weight for kind in KINDS]
            while not self.stop.wait(rng.expovariate(self.rate)):
                backlog = self._quietly(lambda: client.list(state="ready", limit=BACKLOG_LIMIT))
                if backlog and len(backlog["items"]) >= BACKLOG_LIMIT:
                    continue
                kind = rng.choices(KINDS, weights)[0]
                self._quietly(lambda k=kind: client.submit(**submission(k, rng)))
        finally:
            client.close()

    def executor_loop(self, token: str) -> None:
        rng = random.Random()
        client = ExecutorClient(self.base_url, token)

        def setting_up(run: dict[str, Any]) -> None:
            self.stop.wait(rng.uniform(0.5, 2.0))  # a visible moment in `leased`

        try:
            # Only the simulated kinds' queues: the "tasks" queue is the task worker's.
            client.work(lambda job: simulated_work(job, stop=self.stop), queues=QUEUES,
                        lease_seconds=EXECUTOR_LEASE_SECONDS, stop=self.stop,
                        before_start=setting_up)
        finally:
            client.close()

    def operator_loop(self) -> None:
        rng = random.Random()
        operator: OperatorClient | None = None
        try:
            while not self.stop.wait(rng.uniform(3, 6)):
                if operator is None:
                    operator = self._quietly(lambda: OperatorClient(self.base_url, *self.operator))
                    if operator is None:
                        continue
                self._operate(operator, rng)
        finally:
            if operator:
                operator.close()

    def _operate(self, operator: OperatorClient, rng: random.Random) -> None:
        suspended = self._quietly(lambda: operator.list(state="suspended", limit=20))
        if suspended and suspended["items"] and rng.random() < 0.7:
            run = rng.choice(suspended["items"])
            raised = {dim: used + 1000 for dim, used in run["consumed"].items()}
            if raised:
                self._quietly(lambda: operator.replenish(run["id"], raised))
        if rng.random() < 0.6:
            state = rng.choice([RunState.RUNNING, RunState.READY, RunState.SCHEDULED,
                                RunState.RETRY_WAIT])
            page = self._quietly(lambda: operator.list(state=state, limit=20))
            if page and page["items"]:
                run = rng.choice(page["items"])
                self._quietly(lambda: operator.cancel(run["id"], "not needed any more (demo)"))

    def watch_states(self, started: float, clock: Callable[[], float],
                     on_new: Callable[[str, float], None]) -> None:
        """Note when each state first holds a run (polled through the API)."""
        client = ExecutorClient(self.base_url, self.submitter_token)
        try:
            while not self.stop.wait(0.5):
                for state in RunState:
                    if state.value in self.seen_states:
                        continue
                    page = self._quietly(lambda s=state: client.list(state=s.value, limit=1))
                    if page and page["items"]:
                        self.seen_states[state.value] = clock() - started
                        on_new(state.value, self.seen_states[state.value])
        finally:
            client.close()

    def _quietly(self, call: Callable[[], Any]) -> Any:
        """Call the API; log and swallow refusals and network errors (the demo goes on)."""
        try:
            return call()
        except ApiRefused as refused:
            if refused.status not in (404, 409):  # races with other actors are expected
                logger.warning("demo: %s", refused)
        except httpx.HTTPError as error:
            if not self.stop.is_set():
                logger.warning("demo: %r", error)
        return None
