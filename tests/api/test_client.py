"""runs.client against the real API (Django's WSGI app through httpx's WSGI transport)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest
from django.contrib.auth.models import Permission, User
from django.core.wsgi import get_wsgi_application

from runs import services
from runs.client import ApiRefused, ExecutorClient, Job, NonRetryable, OperatorClient
from runs.models import Run
from runs.tokens import ExecutorToken

# The heartbeat thread uses its own database connection: the data must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

BASE = "http://testserver"


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def transport() -> httpx.WSGITransport:
    return httpx.WSGITransport(app=get_wsgi_application())


@pytest.fixture
def executor(transport) -> ExecutorClient:
    _, secret = ExecutorToken.issue("exec-c")
    client = ExecutorClient(BASE, secret, transport=transport)
    yield client
    client.close()


def test_the_client_works_a_run_with_heartbeats_progress_and_consumption(executor):
    submitted = executor.submit("etl", payload={"n": 3}, budget={"tokens": 100})
    (run,) = executor.lease(lease_seconds=1)  # heartbeats every ~0.33 s

    def handler(job: Job) -> dict:
        assert job.payload == {"n": 3}
        job.progress(60)
        job.consume(tokens=7)
        eventually(lambda: Run.objects.get(pk=job.id).progress == 60)
        return {"rows": job.payload["n"]}

    assert executor.run_one(run, handler) == "completed"
    done = Run.objects.get(pk=submitted["id"])
    assert (done.state, done.result, done.consumed) == ("completed", {"rows": 3}, {"tokens": 7})


def test_a_raising_handler_fails_the_attempt_and_non_retryable_fails_the_run(executor):
    executor.submit("flaky")
    (run,) = executor.lease()
    assert executor.run_one(run, lambda job: 1 / 0) == "retry_wait"
    assert "ZeroDivisionError" in Run.objects.get(pk=run["id"]).last_error
    executor.submit("fatal")
    (run,) = executor.lease()

    def fatal(job: Job) -> None:
        raise NonRetryable("corrupt input")

    assert executor.run_one(run, fatal) == "failed"


def test_the_client_stops_when_the_run_is_canceled(executor):
    executor.submit("long")
    (run,) = executor.lease(lease_seconds=1)

    def handler(job: Job) -> None:
        services.cancel(job.id, actor="olga", reason="enough")
        assert job.should_stop.wait(10), "the heartbeat never said stop"
        job.check()

    assert executor.run_one(run, handler) == "stopped: canceled"


def test_the_client_stops_when_the_budget_suspends_the_run(executor):
    executor.submit("metered", budget={"tokens": 10})
    (run,) = executor.lease(lease_seconds=1)

    def handler(job: Job) -> None:
        job.consume(tokens=11)
        assert job.should_stop.wait(10)
        job.check()

    outcome = executor.run_one(run, handler)
    assert outcome.startswith("stopped: run is suspended: budget exhausted")
    assert Run.objects.get(pk=run["id"]).state == "suspended"


def test_work_leases_until_told_to_stop(executor):
    for _ in range(3):
        executor.submit("batch")
    stop = threading.Event()
    done: list[str] = []

    def handler(job: Job) -> str:
        done.append(job.id)
        if len(done) == 3:
            stop.set()
        return "ok"

    executor.work(handler, stop=stop, idle_seconds=0.05)
    assert Run.objects.filter(state="completed").count() == 3


def test_work_leases_and_starts_in_one_request(transport):
    _, secret = ExecutorToken.issue("exec-w")
    seen: list[str] = []

    def recording(request: httpx.Request) -> None:
        seen.append(f"{request.url.path} {request.content.decode()}")

    client = ExecutorClient(BASE, secret, transport=transport)
    client.http.event_hooks["request"].append(recording)
    client.submit("batch")
    stop = threading.Event()

    def handler(job: Job) -> str:
        assert job.run["state"] == "running"
        stop.set()
        return "ok"

    client.work(handler, stop=stop, idle_seconds=0.05)
    client.close()
    paths = [line.split()[0] for line in seen]
    assert paths == ["/api/runs", "/api/lease", f"/api/runs/{job_id(seen)}/complete"]
    assert '"start":true' in seen[1]
    moves = list(Run.objects.get().transitions.values_list("from_state", "to_state"))
    assert moves == [("", "ready"), ("ready", "leased"), ("leased", "running"),
                     ("running", "completed")]


def job_id(seen: list[str]) -> str:
    """The run id in the last recorded request's path (`/api/runs/<id>/complete`)."""
    return seen[-1].split()[0].split("/")[3]


def test_work_with_a_before_start_hook_leases_then_starts(executor):
    executor.submit("batch")
    stop = threading.Event()
    states: list[str] = []

    def handler(job: Job) -> str:
        stop.set()
        return "ok"

    executor.work(handler, stop=stop, idle_seconds=0.05,
                  before_start=lambda run: states.append(run["state"]))
    assert states == ["leased"]
    assert Run.objects.get().state == "completed"


def test_refusals_surface_as_api_refused_with_the_error_body(executor):
    with pytest.raises(ApiRefused) as refused:
        executor.start("01a2203d-1c3e-7f00-8000-000000000000")
    assert (refused.value.status, refused.value.code) == (404, "not_found")


def test_the_operator_client_logs_in_and_cancels_with_csrf(transport, executor):
    user = User.objects.create_user("olga", password="pw-olga-123")
    user.user_permissions.add(Permission.objects.get(codename="cancel_run"))
    run = executor.submit("etl")
    # https: production settings mark the session and CSRF cookies Secure.
    operator = OperatorClient("https://testserver", "olga", "pw-olga-123", transport=transport)
    assert operator.get(run["id"])["state"] == "ready"
    assert operator.cancel(run["id"], "duplicate")["state"] == "canceled"
    assert Run.objects.get(pk=run["id"]).transitions.last().actor == "olga"
    with pytest.raises(ApiRefused):
        OperatorClient("https://testserver", "olga", "wrong-password", transport=transport)


def test_the_operator_client_suspends_resumes_retries_and_reruns(transport, executor):
    user = User.objects.create_user("otto", password="pw-otto-123")
    for codename in ("suspend_run", "resume_run", "retry_run", "rerun_run", "cancel_run"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    operator = OperatorClient("https://testserver", "otto", "pw-otto-123", transport=transport)
    run = executor.submit("etl", max_attempts=2)
    (leased,) = executor.lease()
    executor.start(leased["id"])
    assert operator.suspend(run["id"], "maintenance")["state"] == "suspended"
    assert operator.resume(run["id"])["state"] == "ready"
    executor.lease()
    executor.start(run["id"])
    assert executor.fail(run["id"], "flaky")["state"] == "retry_wait"
    assert operator.retry(run["id"])["state"] == "ready"
    with pytest.raises(ApiRefused) as refused:
        operator.rerun(run["id"])
    assert (refused.value.status, refused.value.code) == (409, "not_allowed")
    operator.cancel(run["id"])
    new = operator.rerun(run["id"])
    assert (new["state"], new["rerun_of"]) == ("ready", run["id"])
    actors = set(Run.objects.get(pk=run["id"]).transitions.values_list("actor", flat=True))
    assert "otto" in actors


def test_the_executor_client_has_the_operator_verbs_too(executor):
    run = executor.submit("etl")
    executor.lease()
    executor.start(run["id"])
    assert executor.suspend(run["id"])["state"] == "suspended"
    assert executor.resume(run["id"])["state"] == "ready"
    executor.cancel(run["id"])
    assert executor.rerun(run["id"])["rerun_of"] == run["id"]
