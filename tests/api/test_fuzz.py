"""Random JSON at every endpoint: never a 500, and a refused request changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runs.models import Run, Transition
from tests.api.conftest import running

pytestmark = pytest.mark.django_db

FIELDS = ["name", "queue", "payload", "priority", "scheduled_at", "max_attempts", "backoff",
          "budget", "executor", "queues", "limit", "lease_seconds", "progress", "consumed",
          "result", "error", "retryable", "reason", "base", "factor", "cap", "jitter", "tokens"]

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.sampled_from(["2026-01-01T00:00:00Z", "9999-12-31T23:59:59", "ready", "-1",
                              "\u0000", "\ud800", "1e400"]))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6) | json_values
raw_bodies = st.binary(max_size=60) | st.sampled_from(
    [b"", b"{", b'{"a": NaN}', b'{"progress": 1e999}', b"[" * 3000, b'{"name": "\\u0000"}'])

VERBS = ["start", "heartbeat", "complete", "fail", "cancel", "replenish"]


def snapshot() -> tuple[Any, ...]:
    runs = Run.objects.aggregate(versions=Sum("version"))["versions"]
    return Run.objects.count(), Transition.objects.count(), runs


def check(answer: Any, before: tuple[Any, ...]) -> None:
    assert answer.status < 500, answer.body
    assert isinstance(answer.body, dict) and answer.body.get("status", answer.status)
    if answer.status >= 400:
        assert {"status", "code", "message"} <= set(answer.body)
        assert snapshot() == before, f"refused with {answer.status} but something changed"


FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(body=bodies)
def test_random_submissions_and_leases(api, body):
    for path in ("/api/runs", "/api/lease"):
        before = snapshot()
        check(api.post(path, body), before)


@FUZZ
@given(verb=st.sampled_from(VERBS), body=bodies, other=st.booleans())
def test_random_bodies_for_run_verbs(api, other_api, verb, body, other):
    run = running(api)
    before = snapshot()
    check((other_api if other else api).post(f"/api/runs/{run['id']}/{verb}", body), before)


@FUZZ
@given(verb=st.sampled_from(VERBS), raw=raw_bodies)
def test_random_bytes_for_run_verbs(api, verb, raw):
    run = running(api)
    before = snapshot()
    check(api.post(f"/api/runs/{run['id']}/{verb}", raw=raw), before)


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["state", "queue", "name", "limit", "cursor",
                                               "x"]),
                              st.text(max_size=12) | st.integers().map(str), max_size=4),
       run_id=st.text(max_size=40) | st.uuids().map(str))
def test_random_reads(api, params, run_id):
    before = snapshot()
    check(api.get("/api/runs", params), before)
    if run_id and "/" not in run_id and "?" not in run_id and "#" not in run_id:
        check(api.get(f"/api/runs/{run_id}"), before)

