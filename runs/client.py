"""A small executor client for the Runboard HTTP API (httpx).

    client = ExecutorClient("http://127.0.0.1:8000", token)
    client.work(handler, queues=["default"])      # lease+start → handler → complete/fail

`handler(job)` receives a `Job`: its `run` (the API's JSON), `progress(percent)` and
`consume(**amounts)` to report, and `should_stop` (an `Event`) set when the server says stop —
the run was canceled, its lease lost, or its budget suspended it. A background thread sends a
heartbeat every third of the lease with the latest progress and the consumption since the
last one. Returning from `handler` completes the run with the return value as result; raising
fails the attempt (retryable unless the exception is `NonRetryable`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import httpx

logger = logging.getLogger(__name__)

# Heartbeats per lease: each renews the lease, so two can be lost before it lapses. The board
# judges staleness against the interval this implies.
HEARTBEATS_PER_LEASE = 3


class NonRetryable(Exception):
    """Raise from a handler to fail the run without retries."""


class RunStopped(Exception):
    """The server told the executor to stop working on this run."""


class ApiRefused(Exception):
    """The API answered with an error body: `{status, code, message, …}`."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(f"{body.get('status')} {body.get('code')}: {body.get('message')}")
        self.body = body
        self.status = body.get("status")
        self.code = body.get("code")
        self.stop = bool(body.get("stop"))


class Job:
    """One leased run, as the handler sees it."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = run
        self.should_stop = threading.Event()  # the server said stop
        self.finished = threading.Event()  # the handler returned or raised
        self.stop_reason = ""
        self._lock = threading.Lock()
        self._progress: int | None = None
        self._consumed: dict[str, float] = {}

    @property
    def id(self) -> str:
        return self.run["id"]

    @property
    def payload(self) -> Any:
        return self.run.get("payload")

    def progress(self, percent: int) -> None:
        """Report progress (0-100) with the next heartbeat."""
        with self._lock:
            self._progress = max(0, min(100, int(percent)))

    def consume(self, **amounts: float) -> None:
        """Add consumption per budget dimension, sent with the next heartbeat."""
        with self._lock:
            for dimension, amount in amounts.items():
                self._consumed[dimension] = self._consumed.get(dimension, 0) + amount

    def take_report(self) -> dict[str, Any]:
        """What the next heartbeat carries; consumption is handed over once."""
        with self._lock:
            report: dict[str, Any] = {}
            if self._progress is not None:
                report["progress"] = self._progress
            if self._consumed:
                report["consumed"], self._consumed = self._consumed, {}
            return report

    def stopped(self, reason: str) -> None:
        self.stop_reason = reason
        self.should_stop.set()

    def check(self) -> None:
        """Raise `RunStopped` if the server said stop; call it between units of work."""
        if self.should_stop.is_set():
            raise RunStopped(self.stop_reason)


class ExecutorClient:
    """Talks to /api/ as one executor (the token's name)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/", timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {token}"},
        )

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.post(path, json=body if body is not None else {})
        return self._answer(response)

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = {"status": response.status_code, "code": "not_json",
                    "message": response.text[:200]}
        if response.is_error:
            raise ApiRefused(data)
        return data

    # -- the API, one method per endpoint ---------------------------------------------------

    def submit(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._post("runs", {"name": name, **fields})

    def get(self, run_id: str) -> dict[str, Any]:
        return self._answer(self.http.get(f"runs/{run_id}"))

    def list(self, **filters: Any) -> dict[str, Any]:
        params = {key: value for key, value in filters.items() if value is not None}
        return self._answer(self.http.get("runs", params=params))

    def lease(self, *, queues: Iterable[str] | None = None, limit: int = 1,
              lease_seconds: int = 30, start: bool = False) -> list[dict[str, Any]]:
        """Lease ready runs; with `start` they come back running (one request, not two)."""
        body: dict[str, Any] = {"limit": limit, "lease_seconds": lease_seconds}
        if start:
            body["start"] = True
        if queues:
            body["queues"] = list(queues)
        return self._post("lease", body)["runs"]

    def start(self, run_id: str) -> dict[str, Any]:
        return self._post(f"runs/{run_id}/start")

    def heartbeat(self, run_id: str, **report: Any) -> dict[str, Any]:
        return self._post(f"runs/{run_id}/heartbeat", report)

    def complete(self, run_id: str, result: Any = None) -> dict[str, Any]:
        return self._post(f"runs/{run_id}/complete", {"result": result})

    def fail(self, run_id: str, error: str, *, retryable: bool = True) -> dict[str, Any]:
        return self._post(f"runs/{run_id}/fail", {"error": error, "retryable": retryable})

    def cancel(self, run_id: str, reason: str = "") -> dict[str, Any]:
        return self._post(f"runs/{run_id}/cancel", {"reason": reason})

    def replenish(self, run_id: str, budget: dict[str, float]) -> dict[str, Any]:
        return self._post(f"runs/{run_id}/replenish", {"budget": budget})

    def suspend(self, run_id: str, reason: str = "") -> dict[str, Any]:
        return self._post(f"runs/{run_id}/suspend", {"reason": reason})

    def resume(self, run_id: str) -> dict[str, Any]:
        return self._post(f"runs/{run_id}/resume")

    def retry(self, run_id: str) -> dict[str, Any]:
        """Retry now: skip the rest of the backoff."""
        return self._post(f"runs/{run_id}/retry")

    def rerun(self, run_id: str) -> dict[str, Any]:
        """A new run with the same work; returns the new run."""
        return self._post(f"runs/{run_id}/rerun")

    # -- the work loop ---------------------------------------------------------------------

    def run_one(self, run: dict[str, Any], handler: Callable[[Job], Any]) -> str:
        """Start a leased run (unless the lease started it), work it with heartbeats, report
        the outcome; return it ("completed", "retry_wait"/"failed", or "stopped: <why>")."""
        job = Job(run)
        try:
            if run.get("state") != "running":
                job.run = {**run, **self.start(job.id)}
        except ApiRefused as refused:
            return f"stopped: {refused.code}"
        except httpx.HTTPError as error:  # the lease lapses and the clock takes the run back
            return f"stopped: server unreachable ({type(error).__name__})"
        interval = max(0.2, run.get("lease_seconds", 30) / HEARTBEATS_PER_LEASE)
        beating = threading.Thread(target=self._heartbeats, args=(job, interval),
                                   name=f"heartbeat-{job.id[-8:]}", daemon=True)
        beating.start()
        try:
            result = handler(job)
            outcome = ("complete", result)
        except RunStopped:
            outcome = ("stopped", None)
        except NonRetryable as error:
            outcome = ("fail_final", str(error) or type(error).__name__)
        except Exception as error:  # the handler's failure is the run's failure
            outcome = ("fail", f"{type(error).__name__}: {error}")
        finally:
            job.finished.set()
            beating.join()
        if job.stop_reason:
            return f"stopped: {job.stop_reason}"
        try:
            kind, value = outcome
            if kind == "complete":
                return self.complete(job.id, value)["state"]
            if kind in ("fail", "fail_final"):
                return self.fail(job.id, value, retryable=kind == "fail")["state"]
            return "stopped"
        except ApiRefused as refused:
            return f"stopped: {refused.code}"
        except httpx.HTTPError as error:  # the outcome is lost; the lease lapses and it retries
            return f"stopped: server unreachable ({type(error).__name__})"

    def _heartbeats(self, job: Job, interval: float) -> None:
        # Wakes every `interval`, or at once when the handler finishes.
        while not job.finished.wait(interval):
            report = job.take_report()
            try:
                answer = self.heartbeat(job.id, **report)
            except ApiRefused as refused:
                if refused.stop or refused.status in (403, 404, 409):
                    job.stopped(refused.code or "refused")
                    return
                logger.warning("heartbeat for %s refused: %s", job.id, refused)
                continue
            except httpx.HTTPError as error:
                logger.warning("heartbeat for %s failed: %r", job.id, error)
                continue
            if answer.get("stop"):
                job.stopped(answer.get("message") or answer["run"]["state"])
                return

    def work(self, handler: Callable[[Job], Any], *, queues: Iterable[str] | None = None,
             lease_seconds: int = 30, idle_seconds: float = 0.5,
             stop: threading.Event | None = None,
             before_start: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Lease and work runs one at a time until `stop` is set.

        Each run is leased and started in one request (`start: true`), unless `before_start`
        is given: that hook runs between the lease and the start, so then they are two.
        """
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                runs = self.lease(queues=queues, limit=1, lease_seconds=lease_seconds,
                                  start=before_start is None)
            except (ApiRefused, httpx.HTTPError) as error:
                logger.warning("lease failed: %s", error)
                stop.wait(idle_seconds)
                continue
            if not runs:
                stop.wait(idle_seconds)
                continue
            for run in runs:
                if before_start:
                    before_start(run)
                self.run_one(run, handler)


class OperatorClient:
    """An operator's session on the API: logs in through the login form, then reads and acts
    with the session cookie and the CSRF header, exactly as a browser would."""

    def __init__(self, base_url: str, username: str, password: str, *,
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        # Over HTTPS Django's CSRF check also wants a same-origin Referer, as browsers send.
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                 transport=transport,
                                 headers={"Referer": base_url.rstrip("/") + "/"})
        self.http.get("/login/")  # sets the csrftoken cookie
        response = self.http.post("/login/", data={
            "username": username, "password": password,
            "csrfmiddlewaretoken": self.http.cookies.get("csrftoken", ""),
        })
        if response.status_code != 302:
            raise ApiRefused({"status": 401, "code": "login_failed",
                              "message": f"login as {username} failed ({response.status_code})"})

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        # Django rotates the CSRF token at login: always send the cookie's current value.
        response = self.http.post(f"/api/{path}", json=body if body is not None else {},
                                  headers={"X-CSRFToken": self.http.cookies.get("csrftoken", "")})
        return ExecutorClient._answer(response)

    def list(self, **filters: Any) -> dict[str, Any]:
        params = {key: value for key, value in filters.items() if value is not None}
        return ExecutorClient._answer(self.http.get("/api/runs", params=params))

    def get(self, run_id: str) -> dict[str, Any]:
        return ExecutorClient._answer(self.http.get(f"/api/runs/{run_id}"))

    def cancel(self, run_id: str, reason: str = "") -> dict[str, Any]:
        return self._post(f"runs/{run_id}/cancel", {"reason": reason})

    def replenish(self, run_id: str, budget: dict[str, float]) -> dict[str, Any]:
        return self._post(f"runs/{run_id}/replenish", {"budget": budget})

    # The same requests as a token's (they only go through this class's `_post`, with CSRF).
    suspend = ExecutorClient.suspend
    resume = ExecutorClient.resume
    retry = ExecutorClient.retry
    rerun = ExecutorClient.rerun
