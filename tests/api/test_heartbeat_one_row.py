"""Heartbeats over HTTP: the lease renewed and one change-log row per beat, whichever path
writes it (one statement on PostgreSQL when nothing is consumed), and every refusal as before."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs import heartbeats, services
from runs.changelog.models import Change
from runs.models import Run
from tests.api.conftest import lease_one, running, submit

pytestmark = pytest.mark.django_db


def log_of(run_id: str) -> list[tuple[str, str, str, int, str]]:
    return list(Change.objects.filter(run_id=run_id).order_by("id").values_list(
        "kind", "from_state", "to_state", "version", "actor"))


def test_a_heartbeat_renews_the_lease_by_its_span_and_logs_one_update(api):
    run = running(api, name="etl", queue="mail")
    before = Run.objects.get(pk=run["id"])
    answer = api.post(f"/api/runs/{run['id']}/heartbeat", {"progress": 40})
    assert (answer.status, answer.body["stop"]) == (200, False), answer.body
    after = Run.objects.get(pk=run["id"])
    assert after.version == before.version + 1
    assert after.lease_expires_at == after.heartbeat_at + timedelta(seconds=after.lease_seconds)
    assert after.lease_expires_at > before.lease_expires_at
    assert (after.progress, after.state, after.attempts) == (40, "running", 1)
    assert log_of(run["id"])[-1] == ("update", "running", "running", after.version, "exec-1")
    assert len(log_of(run["id"])) == len(Run.objects.get(pk=run["id"]).transitions.all()) + 1
    latest = Change.objects.filter(run_id=run["id"]).latest("id")
    assert (latest.queue, latest.name, latest.reason, latest.at) == (
        "mail", "etl", "", after.heartbeat_at)
    assert answer.body["run"]["version"] == after.version
    assert answer.body["run"]["progress"] == 40


def test_a_heartbeat_without_progress_keeps_the_last_one(api):
    run = running(api)
    api.post(f"/api/runs/{run['id']}/heartbeat", {"progress": 70})
    answer = api.post(f"/api/runs/{run['id']}/heartbeat")
    assert answer.body["run"]["progress"] == 70
    assert Run.objects.get(pk=run["id"]).progress == 70


def test_each_heartbeat_appends_exactly_one_change_log_row(api):
    run = running(api)
    logged = len(log_of(run["id"]))
    for beat in range(3):
        api.post(f"/api/runs/{run['id']}/heartbeat", {"progress": beat})
    assert len(log_of(run["id"])) == logged + 3
    versions = [row[3] for row in log_of(run["id"])]
    assert versions == sorted(set(versions))  # one row per version, in order


def test_a_heartbeat_on_a_leased_run_is_a_409_not_allowed(api):
    submit(api)
    run = lease_one(api)
    answer = api.post(f"/api/runs/{run['id']}/heartbeat", {"progress": 1})
    assert (answer.status, answer.body["code"], answer.body["current_state"]) == (
        409, "not_allowed", "leased")


def test_a_heartbeat_after_the_lease_lapsed_is_a_409_lease_lost_and_writes_nothing(api):
    run = running(api)
    Run.objects.filter(pk=run["id"]).update(lease_expires_at=timezone.now() - timedelta(1))
    version = Run.objects.get(pk=run["id"]).version
    answer = api.post(f"/api/runs/{run['id']}/heartbeat", {"progress": 5})
    assert (answer.status, answer.body["code"], answer.body["stop"]) == (409, "lease_lost", True)
    assert Run.objects.get(pk=run["id"]).version == version


def test_a_heartbeat_from_another_executor_is_a_403_and_writes_nothing(api, other_api):
    run = running(api)
    logged = log_of(run["id"])
    answer = other_api.post(f"/api/runs/{run['id']}/heartbeat", {"progress": 5})
    assert (answer.status, answer.body["code"]) == (403, "not_lease_holder")
    assert log_of(run["id"]) == logged


def test_a_heartbeat_on_a_canceled_run_says_stop(api):
    run = running(api)
    services.cancel(run["id"], actor="olga")
    answer = api.post(f"/api/runs/{run['id']}/heartbeat")
    assert (answer.status, answer.body["code"], answer.body["stop"]) == (409, "canceled", True)


def test_a_heartbeat_with_consumption_still_adds_it_and_checks_the_budget(api):
    run = running(api, budget={"tokens": 10})
    api.post(f"/api/runs/{run['id']}/heartbeat", {"consumed": {"tokens": 4}})
    answer = api.post(f"/api/runs/{run['id']}/heartbeat", {"consumed": {"tokens": 7}})
    assert answer.body["stop"] is True
    stored = Run.objects.get(pk=run["id"])
    assert (stored.state, stored.consumed) == ("suspended", {"tokens": 11})


@pytest.mark.postgres
def test_on_postgresql_a_heartbeat_is_one_statement(api):
    run = running(api)
    with CaptureQueriesContext(connection) as queries:
        beaten = heartbeats.heartbeat(run["id"], executor="exec-1", progress=9)
    assert len(queries) == 1, [query["sql"] for query in queries]
    assert (beaten.progress, beaten.state) == (9, "running")
